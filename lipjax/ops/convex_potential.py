"""The Convex Potential Layer (CPL) of Meunier et al. (2022).

``z = x - h W^T sigma(W x + b)`` with ``h = 2 / ||W||_2^2``. The Jacobian is
``I - h W^T D W`` with ``D = diag(sigma'(.)) in [0, 1]``: a symmetric matrix whose
eigenvalues lie in ``[1 - h ||W||^2, 1]``. The layer's Lipschitz constant is
therefore ``max(1, h ||W||_2^2 - 1)``, equal to 1 whenever ``h <= 2 / ||W||_2^2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.ad_checkpoint import checkpoint_name

from lipjax.ops.activations import get_activation
from lipjax.ops.conv import PaddingLike, conv, conv_transpose, map_batch_chunks, uses_winograd


def convex_potential_lipschitz(scale: float, spectral_norm_bound: float) -> float:
    """Lipschitz constant ``max(1, h ||W||^2 - 1)`` of a CPL with step ``h = scale``.

    Args:
      scale: the step ``h`` multiplying ``W^T sigma(W x + b)``.
      spectral_norm_bound: an upper bound of ``||W||_2``.

    Returns:
      An upper bound of the layer's l2 Lipschitz constant.
    """
    return max(1.0, float(scale) * float(spectral_norm_bound) ** 2 - 1.0)


def convex_potential_dense(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    scale: jax.Array,
    activation: str = "relu",
) -> jax.Array:
    """Dense CPL: ``x - h W^T sigma(W x + b)`` with the Flax kernel ``W^T`` of shape (in, features).

    Args:
      x: inputs of shape (..., in).
      kernel: ``W^T``, shape (in, features).
      bias: shape (features,).
      scale: the step ``h`` (``2 / ||W||^2`` for a 1-Lipschitz layer).
      activation: a name from :data:`lipjax.ops.ACTIVATIONS`.
    """
    sigma = get_activation(activation)
    pre = x @ kernel + bias
    return x - scale * (sigma(pre) @ kernel.T)


_CONV_OUTPUT = "convex_potential_conv_output"


def convex_potential_conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    scale: jax.Array,
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
    activation: str = "relu",
    algorithm: str = "direct",
) -> jax.Array:
    """Convolutional CPL: ``x - h K^T sigma(K x + b)`` on NHWC images; output shape = input shape.

    ``K^T`` is the exact adjoint of the strided, padded convolution, so any stride
    and padding keep the layer 1-Lipschitz. ``algorithm`` picks how both
    convolutions are computed (:data:`lipjax.ops.conv.ALGORITHMS`); where ``"auto"`` takes
    Winograd on the CPU, the layer runs over batch chunks (:func:`lipjax.ops.conv.map_batch_chunks`),
    which gives the same result; the backward pass then keeps each chunk's ``K x`` and recomputes
    only Winograd's input transforms, not the two convolutions.
    """
    sigma = get_activation(activation)

    def layer(x, kernel, bias, scale):
        pre = checkpoint_name(conv(x, kernel, strides, padding, algorithm), _CONV_OUTPUT) + bias
        return x - scale * conv_transpose(sigma(pre), kernel, x.shape[1:], strides, padding, algorithm)

    if algorithm == "auto" and uses_winograd(kernel.shape[:2], strides, algorithm):
        return map_batch_chunks(layer, x, kernel, bias, scale, keep=(_CONV_OUTPUT,))
    return layer(x, kernel, bias, scale)
