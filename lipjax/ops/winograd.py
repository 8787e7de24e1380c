"""3x3 stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3), m = 2 or 4.

Each m x m output tile of a 3x3 correlation is ``Y = A^T [(G g G^T) . (B^T d B)] A``
(Lavin & Gray, 2016), with ``d`` the (m + 2) x (m + 2) input tile, ``g`` the 3x3
kernel and ``.`` the elementwise product, so that for C input and O output channels
the whole convolution is ``(m + 2)^2`` independent ``(tiles x C) @ (C x O)`` matmuls:
``(m + 2)^2 / m^2`` multiplications per output and channel pair instead of the direct
method's 9, that is 2.25x fewer for F(2x2, 3x3) and 4x fewer for F(4x4, 3x3), whose
transformed tiles also take 2.25 times the input's memory instead of 4 times.

Everything is slices, adds, scalings and matmuls, so every JAX transformation
(``grad``, ``jvp``, ``vmap``, ``linear_transpose``) applies, and every gradient is again
batched matmuls. The result equals the direct convolution in exact arithmetic and
differs from it by float rounding, larger for F(4x4, 3x3), whose transforms multiply by
up to 8 and divide by 24 (about 4e-6 relative in float32, against 3e-7 for
F(2x2, 3x3)). It serves training; certification runs the direct convolution
(:func:`lipjax.ops.conv` with ``algorithm="direct"``, the default).

References:
  Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


@dataclasses.dataclass(frozen=True)
class MinimalFiltering:
    """The three matrices of F(m x m, 3 x 3): ``input_t`` = B^T, ``kernel`` = G, ``output_t`` = A^T."""

    input_t: np.ndarray  # (m + 2, m + 2)
    kernel: np.ndarray  # (m + 2, 3)
    output_t: np.ndarray  # (m, m + 2)

    @property
    def output_matrix(self) -> np.ndarray:
        """``A^T m A`` for all m x m outputs of a tile at once, as an (m^2, (m + 2)^2) matrix."""
        return np.einsum("xa,yb->xyab", self.output_t, self.output_t).reshape(self.output_t.shape[0] ** 2, -1)


# Interpolation points (0, 1, -1, inf) and (0, 1, -1, 2, -2, inf): Lavin & Gray, section 4.
FILTERINGS = {
    2: MinimalFiltering(
        input_t=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        kernel=np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]),
        output_t=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    ),
    4: MinimalFiltering(
        input_t=np.array(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            np.float64,
        ),
        kernel=np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ]
        ),
        output_t=np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64
        ),
    ),
}


def tile_for(dtype) -> int:
    """Output tile side for ``dtype``: 4 (fewest FLOPs and bytes) from float32 up, 2 for narrower
    floats, whose rounding F(4x4, 3x3)'s larger transform coefficients would amplify."""
    return 4 if jnp.dtype(dtype).itemsize >= 4 else 2


VECTOR_LANES = 16
"""float32 lanes of an AVX-512 register (two AVX2 registers). :func:`correlate3x3_valid` pads
channel counts up to a multiple of it where that adds at most :data:`MAX_LANE_PADDING` of the
work: zero channels change nothing, and whole vectors speed up both the transforms and the
batched matmuls (one CPL-S conv layer, 45 -> 48 channels: about 10% faster forward + backward on
the development CPU, benchmarks/README.md)."""

MAX_LANE_PADDING = 1 / 8


def lane_padded(channels: int) -> int:
    """``channels`` rounded up to a multiple of :data:`VECTOR_LANES` if that adds at most
    :data:`MAX_LANE_PADDING` of them, else ``channels``."""
    padded = -(-channels // VECTOR_LANES) * VECTOR_LANES
    return padded if padded <= channels * (1 + MAX_LANE_PADDING) else channels


def _combine(rows: list[jax.Array], matrix: np.ndarray) -> list[jax.Array]:
    """``matrix @ rows`` for a small constant matrix, as adds and scalings (skipping its zeros)."""
    out = []
    for coefficients in matrix:
        total = None
        for c, row in zip(coefficients, rows, strict=True):
            if c == 0:
                continue
            term = row if c == 1 else -row if c == -1 else row * jnp.asarray(c, row.dtype)
            total = term if total is None else total + term
        out.append(total)
    return out


def _tile_rows(x: jax.Array, axis: int, tiles: int, tile: int) -> list[jax.Array]:
    """Row ``j`` of every input tile along ``axis``: entries ``tile t + j``, t < ``tiles``, j < tile + 2."""
    return [
        lax.slice_in_dim(x, j, j + tile * (tiles - 1) + 1, stride=tile, axis=axis) for j in range(tile + 2)
    ]


def kernel_transform(kernel: jax.Array, tile: int = 4) -> jax.Array:
    """``G g G^T`` for every channel pair: (3, 3, C, O) -> ((tile + 2)^2, C, O)."""
    g = jnp.asarray(FILTERINGS[tile].kernel, kernel.dtype)
    transformed = jnp.einsum("xa,abio,yb->xyio", g, kernel, g)
    return transformed.reshape(-1, *kernel.shape[2:])


def correlate3x3_valid(p: jax.Array, kernel: jax.Array, tile: int | None = None) -> jax.Array:
    """Valid 3x3 stride-1 cross-correlation ``y[n, i, j, o] = sum p[n, i + a, j + b, c] k[a, b, c, o]``.

    Args:
      p: already padded NHWC input, spatial size at least 3x3.
      kernel: HWIO kernel of shape (3, 3, C, O).
      tile: m of F(m x m, 3 x 3), 2 or 4; default :func:`tile_for` the input's dtype.

    Returns:
      (N, H - 2, W - 2, O), equal to ``lax.conv_general_dilated(p, kernel, (1, 1), "VALID")``
      up to float rounding.
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"Winograd F(m x m, 3 x 3) needs a 3x3 kernel; got {kernel.shape[:2]}")
    tile = tile_for(p.dtype) if tile is None else tile
    if tile not in FILTERINGS:
        raise ValueError(f"Winograd tile must be one of {sorted(FILTERINGS)}; got {tile}")
    filtering = FILTERINGS[tile]
    n, h, w, _ = p.shape
    out_h, out_w = h - 2, w - 2
    if min(out_h, out_w) < 1:
        raise ValueError(f"input {p.shape[1:3]} is smaller than the 3x3 kernel")
    tiles_h, tiles_w = -(-out_h // tile), -(-out_w // tile)
    channels, outputs = kernel.shape[2:]
    extra_c, extra_o = lane_padded(channels) - channels, lane_padded(outputs) - outputs
    kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra_c), (0, extra_o)))
    # Whole tiles: the extra zero rows/columns only feed outputs that are cropped, as do the extra
    # zero channels.
    p = jnp.pad(p, ((0, 0), (0, tile * tiles_h + 2 - h), (0, tile * tiles_w + 2 - w), (0, extra_c)))
    rows = jnp.stack(_combine(_tile_rows(p, 1, tiles_h, tile), filtering.input_t))  # (a, N, Th, W', C)
    v = jnp.stack(_combine(_tile_rows(rows, 3, tiles_w, tile), filtering.input_t), axis=1)
    # v: (a, a, N, Th, Tw, C). Flat (a^2, tiles, C) for the matmul: XLA's CPU dot runs the kernel
    # gradient (a contraction over all tiles) about 1.7x faster over one axis than over three.
    m = jnp.einsum(
        "tmc,tco->tmo",
        v.reshape(-1, n * tiles_h * tiles_w, v.shape[-1]),
        kernel_transform(kernel, tile).astype(p.dtype),
    )
    # A^T m A for all tiles as one (m^2, a^2) matmul: its transpose (the gradient) is again one
    # matmul, about 1.7x faster on the CPU than the transpose of the same sums written as slices.
    y = jnp.einsum("st,tmo->smo", jnp.asarray(filtering.output_matrix, p.dtype), m)
    y = y.reshape(tile, tile, n, tiles_h, tiles_w, -1).transpose(2, 3, 0, 4, 1, 5)
    y = y.reshape(n, tile * tiles_h, tile * tiles_w, -1)
    return y[:, :out_h, :out_w, :outputs]
