"""Cayley transforms: orthogonal dense kernels and orthogonal circular convolutions.

``Q = (I - A)(I + A)^{-1}`` for a skew-symmetric (or skew-Hermitian) ``A``. The
eigenvalues of ``A`` are imaginary, so ``I + A`` is invertible; ``I - A`` and
``(I + A)^{-1}`` commute, and ``Q^H Q = (I + A)^{-H} (I - A)^H (I - A) (I + A)^{-1}
= (I - A)^{-1} (I + A)(I - A)(I + A)^{-1} = I``: ``Q`` is orthogonal (unitary). Its
inverse is ``Q^H``, the Cayley transform of ``-A``. The midpoint step of Meunier
et al., ``(I - A/2)^{-1} (I + A/2)``, is ``cayley(-A / 2)``.

Dense: ``cayley(skew_symmetric(W))`` is an orthogonal (n, n) kernel; it exports as
the plain dense kind, whose certificate, the float64 SVD of the exported kernel
(:func:`lipjax.ops.spectral_bounds.dense_spectral_norm_bound`), is exactly 1 plus
the float32 deviation from orthogonality, rounded up.

Convolution (Trockman and Kolter, 2021), circular padding on an ``H x W`` grid:
the 2-D DFT block-diagonalises every circular convolution, one ``c x c`` block
per frequency. With ``M(w) = sum_{a, b} K[a, b] exp(-2 pi i (a w_1 / H + b w_2 / W))``
the layer applies ``Q(w) = cayley(M(w) - M(w)^H)`` at every frequency: unitary
blocks, so the operator is orthogonal. ``K`` is real, hence
``Q(-w) = conj(Q(w))`` and the output is real; only the ``W // 2 + 1`` frequencies
of the real FFT are computed. The exported arrays are the real and imaginary
parts of these blocks; :func:`frequency_conv_lipschitz_bound` computes their
largest singular value in float64.

Why the largest singular value of the stored blocks bounds the exported
operator ``y = irfft2(rfft2(x) Q)`` even when float32 rounding breaks the
symmetry ``Q(-w) = conj(Q(w))`` on the self-conjugate frequencies:
``irfft2(Z) = Re(ifft2(Z_ext))`` with ``Z_ext`` the Hermitian extension of the
stored half-spectrum, whose blocks are the stored ones or their conjugates;
taking a real part and the unitary (scaled) inverse DFT do not increase the norm.

References:
  Trockman and Kolter, Orthogonalizing convolutional layers with the Cayley
  transform, ICLR 2021.
  Meunier, Delattre, Araujo, Allauzen, A dynamical system perspective for
  Lipschitz neural networks, ICML 2022, Section 3.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from lipjax.ops.conv import PaddingLike, normalize_padding
from lipjax.ops.skew import check_square, skew_hermitian, skew_symmetric
from lipjax.ops.spectral_bounds import with_rounding_slack


def cayley(a: jax.Array) -> jax.Array:
    """``Q = (I - A)(I + A)^{-1}``, computed as the solve ``(I + A)^{-1} (I - A)`` (they commute).

    Args:
      a: skew-symmetric real or skew-Hermitian complex matrices, shape (..., n, n).

    Returns:
      the orthogonal / unitary ``Q``, same shape and dtype.
    """
    check_square(a, "Cayley generator A")
    eye = jnp.eye(a.shape[-1], dtype=a.dtype)
    return jnp.linalg.solve(eye + a, eye - a)


def cayley_dense_kernel(w: jax.Array) -> jax.Array:
    """Orthogonal dense kernel ``cayley(W - W^T)`` of shape (n, n) (Flax layout ``y = x @ Q``).

    Args:
      w: unconstrained square parameter (n, n). For ``in != out`` features, pad or
        truncate around the square layer (:func:`lipjax.ops.channel_pad`,
        :func:`lipjax.ops.channel_truncate`).

    Returns:
      ``Q`` with ``Q^T Q = I`` up to float error.
    """
    return cayley(skew_symmetric(w))


def _check_conv_kernel(kernel: jax.Array, grid: Sequence[int]) -> None:
    if kernel.ndim != 4:
        raise ValueError(f"Cayley conv kernel must be HWIO (4-D); got shape {tuple(kernel.shape)}")
    kh, kw, cin, cout = kernel.shape
    if cin != cout:
        raise ValueError(
            f"Cayley conv kernel needs as many input as output channels; got {cin} -> {cout} "
            "(pad or truncate channels around the layer)"
        )
    if kh > grid[0] or kw > grid[1]:
        raise ValueError(f"Cayley conv kernel {kh}x{kw} is larger than the image grid {tuple(grid)}")


def cayley_conv_frequency_matrices(kernel: jax.Array, grid: Sequence[int]) -> jax.Array:
    """Per-frequency unitary blocks ``Q(w) = cayley(M(w) - M(w)^H)`` of the Cayley convolution.

    Args:
      kernel: HWIO kernel (kh, kw, c, c), kh <= grid[0], kw <= grid[1].
      grid: the image size (H, W) (circular padding).

    Returns:
      complex array (H, W // 2 + 1, c, c), applied as ``y_hat(w) = x_hat(w) @ Q(w)``.
    """
    grid = tuple(int(g) for g in grid)
    _check_conv_kernel(kernel, grid)
    transfer = jnp.fft.rfft2(kernel, s=grid, axes=(0, 1))
    return cayley(skew_hermitian(transfer))


def frequency_conv(x: jax.Array, blocks: jax.Array) -> jax.Array:
    """Circular convolution given by per-frequency blocks: ``irfft2(rfft2(x) @ Q(w))``.

    Args:
      x: NHWC images.
      blocks: complex (H, W // 2 + 1, c_in, c_out) (e.g. :func:`cayley_conv_frequency_matrices`).

    Returns:
      real NHWC images (N, H, W, c_out), dtype of ``x``.
    """
    h, w = x.shape[1:3]
    if blocks.ndim != 4 or blocks.shape[:3] != (h, w // 2 + 1, x.shape[3]):
        raise ValueError(
            f"frequency blocks must have shape ({h}, {w // 2 + 1}, {x.shape[3]}, c_out) "
            f"for images {tuple(x.shape[1:])}; got {tuple(blocks.shape)}"
        )
    x_hat = jnp.fft.rfft2(x, axes=(1, 2))
    y_hat = jnp.einsum("nhwi,hwio->nhwo", x_hat, blocks.astype(x_hat.dtype))
    return jnp.fft.irfft2(y_hat, s=(h, w), axes=(1, 2)).astype(x.dtype)


def cayley_conv(x: jax.Array, kernel: jax.Array, padding: PaddingLike = "CIRCULAR") -> jax.Array:
    """Orthogonal Cayley convolution of NHWC images (Trockman and Kolter, 2021).

    ``y = irfft2(rfft2(x) Q(w))`` with ``Q(w)`` from :func:`cayley_conv_frequency_matrices`.

    Args:
      x: NHWC images with c channels.
      kernel: HWIO kernel (kh, kw, c, c).
      padding: must be ``"CIRCULAR"``: the construction is exact only on a periodic image.

    Returns:
      images of the same shape as ``x``.
    """
    if not (isinstance(padding, str) and normalize_padding(padding) == "CIRCULAR"):
        raise ValueError(
            f"Cayley conv padding must be 'CIRCULAR' (the DFT construction is orthogonal only on "
            f"a periodic image); got {padding!r}"
        )
    if kernel.ndim == 4 and x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"input has {x.shape[-1]} channels, Cayley conv kernel expects {kernel.shape[2]}")
    return frequency_conv(x, cayley_conv_frequency_matrices(kernel, x.shape[1:3]))


def frequency_conv_lipschitz_bound(blocks_real: ArrayLike, blocks_imag: ArrayLike) -> float:
    """Guaranteed bound of the exported :func:`frequency_conv`: ``max_w sigma_max(Q(w))``, rounded up.

    Float64 SVD of the exported (float32) real and imaginary parts; for Cayley
    blocks this is 1 plus their measured deviation from unitarity, times
    ``1 + ROUNDING_SLACK`` for the float32 FFTs and products of the forward pass.

    Args:
      blocks_real: real parts, shape (H, W // 2 + 1, c_in, c_out).
      blocks_imag: imaginary parts, same shape.

    Returns:
      an upper bound of the operator's l2 Lipschitz constant.
    """
    re = np.asarray(blocks_real, np.float64)
    im = np.asarray(blocks_imag, np.float64)
    if re.shape != im.shape or re.ndim != 4:
        raise ValueError(
            f"frequency blocks: real and imaginary parts must both be 4-D of one shape; "
            f"got {re.shape} and {im.shape}"
        )
    if not (np.all(np.isfinite(re)) and np.all(np.isfinite(im))):
        raise ValueError("frequency blocks contain NaN or inf: no Lipschitz bound exists")
    if re.size == 0:
        return 0.0
    return with_rounding_slack(float(np.linalg.svd(re + 1j * im, compute_uv=False).max()))
