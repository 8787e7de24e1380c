"""Almost-orthogonal Lipschitz (AOL) rescaling of dense and convolutional kernels.

AOL (Prach and Lampert, 2022) multiplies a linear map ``W`` on the right by a
diagonal ``D = diag(d)`` with ``d_i = (sum_j |W^T W|_ij)^{-1/2}``; the rescaled
map ``W D`` has ``||W D||_2 <= 1`` for every ``W``, with no iteration and no
spectral-norm estimate. The rescaled kernel is an ordinary dense / conv kernel,
so a layer exports it as the plain dense / conv kind and its certificate is the
exact spectral norm of the exported kernel (:mod:`lipjax.ops.spectral_bounds`).

Why ``||W D||_2 <= 1`` (Schur test / Gershgorin). Let ``G = W^T W`` (symmetric,
PSD) and ``r_i = sum_j |G_ij|``. The matrix ``diag(r) - G`` is symmetric and
diagonally dominant with a non-negative diagonal (``r_i - G_ii >= sum_{j != i}
|G_ij|``), hence PSD by Gershgorin's theorem: ``G <= diag(r)`` in the Loewner
order. Then ``(W D)^T (W D) = D G D <= D diag(r) D``, whose diagonal is
``d_i^2 r_i <= 1``. Any ``d_i <= r_i^{-1/2}`` works, so clamping ``r_i`` from below
by ``eps`` (which only lowers ``d_i``) keeps the bound; a zero column (``r_i = 0``)
contributes nothing to ``W D`` whatever its ``d_i``.

Convolutions. Let ``C`` be the convolution with an HWIO kernel ``K``. On the
infinite plane ``C^T C`` is the convolution (over input channels) whose kernel
is the autocorrelation ``P[s, i, j] = sum_{a, o} K[a, i, o] K[a + s, j, o]``
(``s`` over the ``(2 kh - 1) x (2 kw - 1)`` shifts), so every row of ``C^T C``
indexed by channel ``i`` has absolute sum ``r_i = sum_{s, j} |P[s, i, j]|`` and the
argument above gives ``C^T C <= diag(r)`` with one ``r_i`` per input channel.
The layer's real operator is covered too, for every padding and stride:

* zero padding and/or stride: ``W = S_out C S_in`` with ``S_in`` the zero-extension
  of the image and ``S_out`` a selection of output coordinates, so
  ``W^T W = S_in^T C^T (S_out^T S_out) C S_in <= S_in^T C^T C S_in <= diag(r)``
  restricted to the image (a stride only drops rows, so it is looser than needed);
* circular padding on an ``n``-grid: ``C^T C`` is the circulant whose entries are
  the ``P[s]`` summed over the shifts ``s`` that coincide modulo ``n``; by the
  triangle inequality each absolute row sum is still at most ``r_i``.

References:
  Prach and Lampert, Almost-orthogonal layers for efficient general-purpose
  Lipschitz networks, ECCV 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_EPS = 1e-12


def gershgorin_scaling(
    abs_gram: jax.Array, q: jax.Array | None = None, eps: float = DEFAULT_EPS
) -> jax.Array:
    """Weighted absolute row sums ``t_i = sum_j |G|_ij q_j / q_i``, clamped below by ``eps``.

    With ``T = diag(t)`` one has ``G <= T`` (Loewner order) for the symmetric
    ``G`` whose entrywise absolute value (summed over spatial shifts for a
    convolution) is ``abs_gram``: ``Q (T - G) Q`` with ``Q = diag(q)`` is
    diagonally dominant with a non-negative diagonal. ``q = 1`` is AOL's choice.

    Args:
      abs_gram: non-negative (c, c) matrix ``|G|``.
      q: positive weights of shape (c,), or ``None`` for all ones.
      eps: lower clamp; raising ``t`` only makes ``T - G`` more positive, so it is sound.

    Returns:
      ``t`` of shape (c,).
    """
    if q is None:
        rows = jnp.sum(abs_gram, axis=1)
    else:
        rows = (abs_gram @ q) / q
    return jnp.maximum(rows, eps)


def dense_abs_gram(kernel: jax.Array) -> jax.Array:
    """``|W^T W|`` for the Flax dense kernel ``W^T`` of shape (in, out): an (in, in) matrix.

    Args:
      kernel: shape (in, out); the layer computes ``x @ kernel``.

    Returns:
      the entrywise absolute value of ``kernel @ kernel.T``.
    """
    return jnp.abs(kernel @ kernel.T)


def conv_input_gram_kernel(kernel: jax.Array) -> jax.Array:
    """Autocorrelation ``P[s, i, j] = sum_{a, o} K[a, i, o] K[a + s, j, o]`` of an HWIO kernel.

    ``P`` is the kernel of ``C^T C`` (a convolution over input channels) for the
    convolution ``C`` with kernel ``K``, on the infinite plane.

    Args:
      kernel: HWIO kernel of shape (kh, kw, cin, cout).

    Returns:
      shape (2 kh - 1, 2 kw - 1, cin, cin); index ``[s_h + kh - 1, s_w + kw - 1, i, j]``.
    """
    kh, kw = kernel.shape[:2]
    # The kernel itself is the "image": batch = channel j, features = out channels o.
    image = jnp.pad(kernel, ((kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0), (0, 0))).transpose(2, 0, 1, 3)
    filters = kernel.transpose(0, 1, 3, 2)  # (kh, kw, cout, cin): contracts o, outputs i
    out = jax.lax.conv_general_dilated(
        image, filters, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )  # out[j, s, i] = sum_{a, o} K[a, i, o] K[a + s, j, o]
    return out.transpose(1, 2, 3, 0)


def conv_abs_gram(kernel: jax.Array) -> jax.Array:
    """``sum_s |P[s]|``: the (cin, cin) matrix of absolute autocorrelations summed over shifts.

    Its row sums bound the absolute row sums of ``C^T C`` for the convolution's
    real operator (any padding, any stride; see the module docstring).
    """
    return jnp.sum(jnp.abs(conv_input_gram_kernel(kernel)), axis=(0, 1))


def _check_ndim(kernel: jax.Array, ndim: int, what: str) -> None:
    if kernel.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D; got shape {tuple(kernel.shape)}")


def aol_dense_kernel(kernel: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """AOL-rescaled dense kernel ``diag(d) W^T`` with ``d_i = (sum_j |W^T W|_ij)^{-1/2}``.

    In Flax layout (``y = x @ kernel``, ``kernel = W^T`` of shape (in, out)) the
    map ``W D`` becomes ``D kernel``: row ``i`` of the kernel is scaled by ``d_i``.

    Args:
      kernel: shape (in, out).
      eps: lower clamp of the row sums (sound, see :func:`gershgorin_scaling`).

    Returns:
      the rescaled kernel, same shape, with spectral norm at most 1.

    References:
      Prach and Lampert, ECCV 2022, Theorem 1.
    """
    _check_ndim(kernel, 2, "dense AOL kernel")
    d = jax.lax.rsqrt(gershgorin_scaling(dense_abs_gram(kernel), eps=eps))
    return kernel * d[:, None]


def aol_conv_kernel(kernel: jax.Array, eps: float = DEFAULT_EPS) -> jax.Array:
    """AOL-rescaled HWIO kernel ``K[a, b, i, o] d_i``, ``d_i = (sum_{s, j} |P[s, i, j]|)^{-1/2}``.

    ``P`` is the kernel autocorrelation (:func:`conv_input_gram_kernel`). The
    rescaled convolution has operator norm at most 1 for every padding and stride.

    Args:
      kernel: HWIO kernel of shape (kh, kw, cin, cout).
      eps: lower clamp of the row sums.

    Returns:
      the rescaled kernel, same shape.

    References:
      Prach and Lampert, ECCV 2022, Theorem 2.
    """
    _check_ndim(kernel, 4, "conv AOL kernel (HWIO)")
    d = jax.lax.rsqrt(gershgorin_scaling(conv_abs_gram(kernel), eps=eps))
    return kernel * d[None, None, :, None]
