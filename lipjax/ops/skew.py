"""Skew-symmetric generators ``A^T = -A`` for the norm-preserving steps (Cayley, exponential).

* Dense: ``A = W - W^T`` for a square ``W``.
* Convolution: ``S = K - flip(K)^T``, the kernel minus its spatially flipped,
  channel-transposed copy. For an odd kernel, stride 1 and a centred padding
  (``"SAME"`` or ``"CIRCULAR"``), the adjoint of the convolution with ``K`` is the
  convolution with ``flip(K)^T`` and the same padding, so the convolution with
  ``S`` is the operator ``C - C^T``: skew-symmetric as a matrix on the whole image.
  (An even kernel pads asymmetrically, and its adjoint is not a same-padded
  convolution; a stride changes the output size: both are refused.)
* Frequency domain: ``A(w) = M(w) - M(w)^H`` per frequency, skew-Hermitian.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lipjax.ops.conv import PaddingLike, normalize_padding

SKEW_PADDINGS = ("SAME", "CIRCULAR")


def check_square(w: jax.Array, what: str) -> None:
    """Raises ValueError unless the last two axes of ``w`` are equal."""
    if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"{what} must be square (n, n); got shape {tuple(w.shape)}")


def skew_symmetric(w: jax.Array) -> jax.Array:
    """``A = W - W^T`` for a square ``W`` (last two axes); ``A^T = -A`` exactly, also in float32.

    Args:
      w: shape (..., n, n).

    Returns:
      the skew-symmetric matrix, same shape.
    """
    check_square(w, "skew-symmetric generator W")
    return w - jnp.swapaxes(w, -1, -2)


def skew_hermitian(m: jax.Array) -> jax.Array:
    """``A = M - M^H`` for complex square matrices (last two axes); ``A^H = -A``."""
    check_square(m, "skew-Hermitian generator M")
    return m - jnp.conj(jnp.swapaxes(m, -1, -2))


def check_skew_conv(kernel: jax.Array, padding: PaddingLike) -> str:
    """Validates a kernel and padding for a skew-symmetric convolution; returns the padding name.

    Raises:
      ValueError: kernel not HWIO, in/out channels differ, even spatial size, or a
        padding other than ``"SAME"`` / ``"CIRCULAR"``.
    """
    if kernel.ndim != 4:
        raise ValueError(f"skew conv kernel must be HWIO (4-D); got shape {tuple(kernel.shape)}")
    kh, kw, cin, cout = kernel.shape
    if cin != cout:
        raise ValueError(f"skew conv kernel needs as many input as output channels; got {cin} -> {cout}")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(
            f"skew conv kernel needs odd spatial sizes (centred padding, adjoint = flipped kernel); "
            f"got {kh}x{kw}"
        )
    name = normalize_padding(padding)
    if name not in SKEW_PADDINGS:
        raise ValueError(f"skew conv padding must be one of {SKEW_PADDINGS}; got {padding!r}")
    return name


def skew_conv_kernel(kernel: jax.Array) -> jax.Array:
    """``S[a, b, i, o] = K[a, b, i, o] - K[kh-1-a, kw-1-b, o, i]``: the kernel of ``C - C^T``.

    Args:
      kernel: HWIO kernel (kh, kw, c, c) with odd kh, kw.

    Returns:
      the skew kernel, same shape; use it with stride 1 and ``"SAME"`` or ``"CIRCULAR"`` padding.
    """
    check_skew_conv(kernel, "SAME")
    return kernel - jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
