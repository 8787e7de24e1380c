"""deel-lip style normalised linear layers, as presets of the constrained dense / conv layers.

Each preset only names its :class:`lipjax.ops.KernelConstraint`; the forward
pass, the power iteration and the export live in :mod:`lipjax.layers.constrained`.
"""

from __future__ import annotations

import flax.linen as nn

from lipjax import ops
from lipjax.layers.base import check_positive
from lipjax.layers.constrained import NORMALIZED_HEAD, ConstrainedConvBase, ConstrainedDenseBase
from lipjax.ops.constraints import KernelConstraint, normalize_columns

__all__ = ["FrobeniusDense", "NormalizedDense", "SpectralConv", "SpectralDense", "normalize_columns"]


class SpectralDense(ConstrainedDenseBase):
    """Dense layer with ``W / ||W||_2`` (power iteration), then optional Björck steps.

    With ``bjorck_iters > 0`` the normalised kernel is orthonormalised, so the
    layer preserves gradient norms (an isometry when square). Export divides by
    a guaranteed upper bound of ``||W||_2`` instead of the power-iteration estimate.

    Attributes:
      features: output size.
      use_bias: add a bias.
      power_iters: power-iteration steps per training update.
      bjorck_iters: Björck iterations after spectral normalisation (0: none).
    """

    kernel_init: nn.initializers.Initializer = nn.initializers.orthogonal()
    bjorck_iters: int = 15

    def __post_init__(self):
        check_positive("bjorck_iters", self.bjorck_iters, "SpectralDense", allow_zero=True)
        super().__post_init__()

    def kernel_constraint(self) -> KernelConstraint:
        return ops.spectral(self.bjorck_iters)


class SpectralConv(ConstrainedConvBase):
    """Convolution normalised by its operator norm on the real input size.

    With ``bjorck_iters > 0`` the reshaped ``(kh kw C_in, C_out)`` kernel is first
    orthonormalised (deel-lip's SpectralConv2D), then the result is divided by the
    power-iteration estimate of the *convolution operator* norm, so the layer stays
    1-Lipschitz whatever the kernel size (deel-lip instead divides by a fixed
    ``sqrt(kh kw)``-type factor).
    """

    bjorck_iters: int = 0

    def __post_init__(self):
        check_positive("bjorck_iters", self.bjorck_iters, "SpectralConv", allow_zero=True)
        super().__post_init__()

    def kernel_constraint(self) -> KernelConstraint:
        return ops.bjorck_then_spectral(self.bjorck_iters)


class FrobeniusDense(ConstrainedDenseBase):
    """Dense layer with ``W / ||W||_F`` (``||W||_2 <= ||W||_F``: 1-Lipschitz, no state).

    With one output it is exactly norm-preserving on the gradient, the usual head
    of a binary HKR network (deel-lip's FrobeniusDense).
    """

    def kernel_constraint(self) -> KernelConstraint:
        return ops.FROBENIUS


class NormalizedDense(ConstrainedDenseBase):
    """Last Layer Normalisation (LLN): logits ``f_j = <w_j, x> / ||w_j|| + b_j``.

    Certification with this head uses the tighter radius
    ``min_{j != y} (f_y - f_j) / (L ||w_y - w_j||)`` (see :mod:`lipjax.certify`),
    with ``L`` the constant of the network body feeding it.
    """

    export_kind = NORMALIZED_HEAD

    def kernel_constraint(self) -> KernelConstraint:
        return ops.LLN_ROWS
