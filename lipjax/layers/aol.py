"""Almost-orthogonal Lipschitz (AOL) layers (Prach and Lampert, 2022), presets of the constrained layers.

The kernel is rescaled by ``d_i = (sum_j |W^T W|_ij)^{-1/2}`` (:mod:`lipjax.ops.aol`,
with the proof that the result has operator norm at most 1, for convolutions
of any padding and stride). No power iteration and no state; the layers export
to the plain ``dense`` / ``conv`` kinds and are certified on the exported kernel.
"""

from __future__ import annotations

from lipjax.layers.constrained import ConstrainedConvBase, ConstrainedDenseBase
from lipjax.ops.constraints import AOL_CONV, AOL_DENSE, KernelConstraint


class AOLDense(ConstrainedDenseBase):
    """Dense AOL layer ``y = x diag(d) W^T + b``, ``||diag(d) W^T||_2 <= 1``.

    Attributes:
      features: output size.
      use_bias: add a bias.
    """

    def kernel_constraint(self) -> KernelConstraint:
        return AOL_DENSE


class AOLConv(ConstrainedConvBase):
    """Convolutional AOL layer: the HWIO kernel rescaled per input channel; operator norm <= 1.

    Attributes:
      features: output channels.
      kernel_size, strides, padding: of the convolution (any: the bound holds for all).
      use_bias: add a bias.
    """

    def kernel_constraint(self) -> KernelConstraint:
        return AOL_CONV
