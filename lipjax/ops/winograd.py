"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3).

Each 2x2 output tile of a 3x3 correlation is ``Y = A^T [(G g G^T) . (B^T d B)] A``
(Lavin & Gray, 2016), with ``d`` the 4x4 input tile, ``g`` the 3x3 kernel and
``.`` the elementwise product, so that for C input and O output channels the
whole convolution is 16 independent ``(tiles x C) @ (C x O)`` matmuls: 16
multiplications per tile and channel pair instead of the direct method's 36,
2.25x fewer FLOPs. It is written with slices, adds and one batched matmul only,
so every JAX transformation (``grad``, ``jvp``, ``vmap``, ``linear_transpose``)
applies and every gradient is again batched matmuls, which XLA runs near the
matmul peak on CPUs, inside ``scan`` as well as outside.

The result equals the direct convolution in exact arithmetic and differs from it
by float rounding (the transforms only add, subtract and halve), so it serves
training; certification runs the direct convolution (:func:`lipjax.ops.conv`
with ``algorithm="direct"``, the default).

References:
  Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# G maps a 3-tap filter to the 4 Winograd points (0, 1, -1, inf).
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _input_transform(p: jax.Array, axis: int) -> list[jax.Array]:
    """``B^T d`` along ``axis`` for every tile: rows ``2i + a`` (a = 0..3) of the
    even-length axis, combined as ``(d0 - d2, d1 + d2, d2 - d1, d1 - d3)``.

    The axis is split into (pairs, 2) so the four row sets are contiguous slices.
    """
    pairs = p.shape[axis] // 2
    split = p.reshape(*p.shape[:axis], pairs, 2, *p.shape[axis + 1 :])
    even = lax.index_in_dim(split, 0, axis + 1, keepdims=False)
    odd = lax.index_in_dim(split, 1, axis + 1, keepdims=False)
    d0, d1 = (lax.slice_in_dim(a, 0, pairs - 1, axis=axis) for a in (even, odd))
    d2, d3 = (lax.slice_in_dim(a, 1, pairs, axis=axis) for a in (even, odd))
    return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


def _output_transform(m: jax.Array, axis: int) -> jax.Array:
    """``A^T m`` along ``axis``: its 4 entries become the 2 outputs ``(m0 + m1 + m2, m1 - m2 - m3)``."""
    m0, m1, m2, m3 = (lax.index_in_dim(m, i, axis, keepdims=False) for i in range(4))
    return jnp.stack([m0 + m1 + m2, m1 - m2 - m3], axis=axis)


def kernel_transform(kernel: jax.Array) -> jax.Array:
    """``G g G^T`` for every channel pair: (3, 3, C, O) -> (16, C, O)."""
    g = jnp.asarray(_G, kernel.dtype)
    transformed = jnp.einsum("xa,abio,yb->xyio", g, kernel, g)
    return transformed.reshape(16, *kernel.shape[2:])


def correlate3x3_valid(p: jax.Array, kernel: jax.Array) -> jax.Array:
    """Valid 3x3 stride-1 cross-correlation ``y[n, i, j, o] = sum p[n, i + a, j + b, c] k[a, b, c, o]``.

    Args:
      p: already padded NHWC input, spatial size at least 3x3.
      kernel: HWIO kernel of shape (3, 3, C, O).

    Returns:
      (N, H - 2, W - 2, O), equal to ``lax.conv_general_dilated(p, kernel, (1, 1), "VALID")``
      up to float rounding.
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"Winograd F(2x2, 3x3) needs a 3x3 kernel; got {kernel.shape[:2]}")
    n, h, w, _ = p.shape
    out_h, out_w = h - 2, w - 2
    if min(out_h, out_w) < 1:
        raise ValueError(f"input {p.shape[1:3]} is smaller than the 3x3 kernel")
    # Tiles cover 2x2 outputs: an odd output size gets one zero row/column more
    # (it only feeds the extra output, which is cropped).
    p = jnp.pad(p, ((0, 0), (0, out_h % 2), (0, out_w % 2), (0, 0)))
    tiles = [t for rows in _input_transform(p, 1) for t in _input_transform(rows, 2)]
    v = jnp.stack(tiles)  # (16, N, H/2, W/2, C)
    m = jnp.einsum("tnijc,tco->tnijo", v, kernel_transform(kernel).astype(p.dtype))
    m = m.reshape(4, 4, *m.shape[1:])  # (4, 4, N, H/2, W/2, O)
    rows = _output_transform(m, 0)  # (2, 4, N, H/2, W/2, O)
    y = _output_transform(rows, 1)  # (2, 2, N, H/2, W/2, O)
    y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, out_h + out_h % 2, out_w + out_w % 2, -1)
    return y[:, :out_h, :out_w, :]
