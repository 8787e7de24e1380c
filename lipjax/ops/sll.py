"""SDP-based Lipschitz layers (SLL) of Araujo et al. (2023), dense and convolutional.

``y = x - 2 W T^{-1} sigma(W^T x + b)`` with ``T = diag(t)``,
``t_i = sum_j |W^T W|_ij q_j / q_i`` and ``q > 0`` (trainable, e.g. ``q = exp(p)``).
For a convolution, ``W^T`` is the convolution ``C`` (``x -> C x + b``), ``W`` its
exact adjoint :func:`lipjax.ops.conv_transpose`, and ``|W^T W|`` is summed over the
spatial shifts of the kernel's autocorrelation over output channels (the
kernel of ``C C^T``).

Proof that the layer is 1-Lipschitz (for ``sigma`` non-decreasing with slope at
most 1: every activation of :data:`lipjax.ops.ACTIVATIONS`).

1. ``T >= W^T W`` (Loewner order): see :func:`lipjax.ops.aol.gershgorin_scaling`;
   for a convolution of any padding and stride, ``C C^T`` is a principal
   sub-block of the infinite-plane ``C C^T`` taken after a contraction (see
   :mod:`lipjax.ops.aol`, same argument with input and output swapped), hence
   again ``<= diag(t)`` with one ``t_i`` per output channel.
2. For two inputs ``x, z``: ``sigma(u_i) - sigma(v_i) = lambda_i (u_i - v_i)`` with
   ``lambda_i in [0, 1]`` (monotone, 1-Lipschitz). So
   ``y(x) - y(z) = (I - 2 W M W^T)(x - z)`` with ``M = T^{-1} Lambda`` diagonal, ``>= 0``.
3. ``J = I - 2 W M W^T`` is symmetric and ``W M W^T >= 0``. Its largest eigenvalue
   is ``||M^{1/2} W^T W M^{1/2}|| <= ||M^{1/2} T M^{1/2}|| = ||Lambda|| <= 1`` by 1.
   So the eigenvalues of ``J`` lie in ``[-1, 1]`` and ``||y(x) - y(z)|| <= ||x - z||``.

What the conditions are for. Step 2 needs ``lambda_i >= 0``: with a decreasing
activation ``M`` has negative entries and ``J`` can have eigenvalues above 1. Step 3
needs ``t_i`` at least the weighted Gershgorin row sum: any epsilon added for
numerical safety must *raise* ``t`` (as :func:`gershgorin_scaling` does), never shrink
it, and ``q`` must be positive (``exp`` of a parameter, not ``|p|``, which can be 0).
The authors' first public implementation added a stability epsilon that broke the
guarantee (their updated paper, Appendix D, and their comment on
berndprach/1LipschitzLayersCompared issue 2); the only clamp here raises ``t``.
The factor 2 is the largest step: ``2 W M W^T`` may reach ``2 I``.

Certificate of an exported layer (``scale = 2 / t`` stored as an array): for any
positive ``scale`` the same steps give ``J = I - W S Lambda W^T`` with
``S = diag(scale)``, eigenvalues in ``[1 - ||W S^{1/2}||^2, 1]``, so the Lipschitz
constant is at most ``max(1, ||W S^{1/2}||_2^2 - 1)`` (the convex potential
formula with ``h = 1``), computed by SVD / DFT on the exported arrays.

References:
  Araujo, Havens, Delattre, Allauzen, Hu, A unified algebraic perspective on
  Lipschitz neural networks, ICLR 2023.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from lipjax.ops.activations import get_activation
from lipjax.ops.aol import DEFAULT_EPS, conv_abs_gram, gershgorin_scaling
from lipjax.ops.conv import PaddingLike, conv, conv_transpose
from lipjax.ops.convex_potential import convex_potential_lipschitz
from lipjax.ops.spectral_bounds import (
    conv_spectral_norm_bound,
    dense_spectral_norm_bound,
    with_rounding_slack,
)


def _check_features(name: str, array: jax.Array, features: int) -> None:
    if array.shape != (features,):
        raise ValueError(f"SLL {name} must have shape ({features},) (one per feature); got {array.shape}")


def sll_dense_scale(kernel: jax.Array, q: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """``2 / t`` with ``t_i = sum_j |W^T W|_ij q_j / q_i`` for the Flax kernel ``W`` (in, features).

    Args:
      kernel: ``W``, shape (in, features); the layer computes ``x @ kernel``.
      q: positive weights of shape (features,), e.g. ``exp`` of a parameter.
      eps: lower clamp of ``t`` (sound: it only raises ``t``).

    Returns:
      the per-feature step ``2 / t`` of shape (features,).
    """
    if kernel.ndim != 2:
        raise ValueError(f"SLL dense kernel must be 2-D (in, features); got shape {tuple(kernel.shape)}")
    _check_features("q", q, kernel.shape[1])
    return 2.0 / gershgorin_scaling(jnp.abs(kernel.T @ kernel), q, eps)


def sll_conv_scale(kernel: jax.Array, q: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """``2 / t`` for the HWIO kernel of ``W^T``, with ``|W^T W|`` summed over the autocorrelation.

    ``t_o = sum_{s, o'} |P[s, o, o']| q_{o'} / q_o`` with
    ``P[s, o, o'] = sum_{a, i} K[a, i, o] K[a + s, i, o']`` (the kernel of ``C C^T``).

    Args:
      kernel: HWIO kernel (kh, kw, cin, cout) of the convolution ``x -> W^T x``.
      q: positive weights of shape (cout,).
      eps: lower clamp of ``t``.

    Returns:
      the per-channel step ``2 / t`` of shape (cout,).
    """
    if kernel.ndim != 4:
        raise ValueError(f"SLL conv kernel must be HWIO (4-D); got shape {tuple(kernel.shape)}")
    _check_features("q", q, kernel.shape[3])
    return 2.0 / gershgorin_scaling(conv_abs_gram(kernel.swapaxes(2, 3)), q, eps)


def sll_dense(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    scale: jax.Array,
    activation: str = "relu",
) -> jax.Array:
    """Dense SLL: ``x - W (scale * sigma(W^T x + b))`` with ``scale = 2 / t`` from :func:`sll_dense_scale`.

    Args:
      x: inputs of shape (..., in).
      kernel: ``W``, shape (in, features).
      bias: shape (features,).
      scale: per-feature step, shape (features,).
      activation: a name from :data:`lipjax.ops.ACTIVATIONS` (all monotone, slope <= 1).

    Returns:
      same shape as ``x``.
    """
    sigma = get_activation(activation)
    return x - (scale * sigma(x @ kernel + bias)) @ kernel.T


def sll_conv(
    x: jax.Array,
    kernel: jax.Array,
    bias: jax.Array,
    scale: jax.Array,
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
    activation: str = "relu",
    algorithm: str = "direct",
) -> jax.Array:
    """Convolutional SLL: ``x - C^T (scale * sigma(C x + b))`` on NHWC images; output shape = input shape.

    ``C^T`` is the exact adjoint of the strided, padded convolution, so the
    proof in the module docstring holds for every stride and padding.
    ``algorithm``: as in :func:`lipjax.ops.conv`.
    """
    sigma = get_activation(activation)
    pre = conv(x, kernel, strides, padding, algorithm) + bias
    return x - conv_transpose(scale * sigma(pre), kernel, x.shape[1:], strides, padding, algorithm)


def _positive_scale(scale: ArrayLike) -> np.ndarray:
    s = np.asarray(scale, np.float64)
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise ValueError("SLL scale must be finite and non-negative (it is 2 / t)")
    return s


def sll_dense_lipschitz_bound(kernel: ArrayLike, scale: ArrayLike) -> float:
    """Guaranteed Lipschitz bound ``max(1, ||W diag(scale)^{1/2}||_2^2 - 1)`` of an exported dense SLL.

    Float64, on the exported arrays; sound for any non-negative ``scale`` (see the module docstring).
    The result carries :func:`lipjax.ops.spectral_bounds.with_rounding_slack` for the
    float32 forward pass (an exactly 1-Lipschitz layer certifies as ``1 + 1e-5``).
    """
    s = _positive_scale(scale)
    w = np.asarray(kernel, np.float64) * np.sqrt(s)[None, :]
    return with_rounding_slack(convex_potential_lipschitz(1.0, dense_spectral_norm_bound(w)))


def sll_conv_lipschitz_bound(
    kernel: ArrayLike,
    scale: ArrayLike,
    input_hw: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> float:
    """Guaranteed bound ``max(1, ||diag(scale)^{1/2} C||_2^2 - 1)`` of an exported conv SLL.

    ``diag(scale)^{1/2} C`` is the convolution with the kernel's output channels
    scaled by ``sqrt(scale)``; its norm is bounded on the layer's real operator
    by :func:`lipjax.ops.spectral_bounds.conv_spectral_norm_bound`. Carries the
    float32 rounding slack like :func:`sll_dense_lipschitz_bound`.
    """
    s = _positive_scale(scale)
    k = np.asarray(kernel, np.float64) * np.sqrt(s)[None, None, None, :]
    norm = conv_spectral_norm_bound(k, input_hw, strides, padding)
    return with_rounding_slack(convex_potential_lipschitz(1.0, norm))
