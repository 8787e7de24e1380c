"""Guaranteed upper bounds of spectral norms, for certification.

Everything here runs in numpy float64 on exported (float32) weights, which are
exactly representable in float64. LAPACK's SVD is backward stable: the computed
singular values are those of ``W + E`` with ``||E||_2 <= c n u ||W||_2``
(``u = 2^-53``), a relative error below ``1e-12`` for the sizes used here. Every
bound is multiplied by ``1 + ROUNDING_SLACK`` (``1e-5``), which dwarfs that error
and also covers the float32 rounding of the exported forward pass of one layer.

* Dense: ``||W||_2`` by SVD.
* Convolution with circular padding: exact, through the DFT. A circular
  convolution on an ``n x n`` grid is block-diagonalised by the 2-D DFT; its
  singular values are those of the ``C_in x C_out`` matrices
  ``K_hat(w) = sum_{a,b} K[a, b] exp(-2 pi i (a w_1 + b w_2) / n)``.
* Strided convolution: the polyphase (space-to-depth) decomposition turns a
  stride-``s`` convolution on an ``n``-grid into a stride-1 convolution on an
  ``n/s``-grid with ``s^2 C_in`` input channels and a ``ceil(k/s)`` kernel; the
  same DFT formula then applies exactly.
* Zero padding: the zero-padded convolution is a sub-matrix (rows and
  columns) of a circular convolution on a grid large enough that nothing wraps
  around (``N >= padded size``, rounded up to the stride). A sub-matrix has a
  smaller or equal norm, so the DFT value on that grid is a sound upper bound;
  it exceeds the exact value by about 0.1% at 32 x 32 inputs (0.7% at 16 x 16).
  For small inputs (at most ``EXPLICIT_LIMIT`` input coordinates) the exact
  norm of the explicit operator matrix, built in float64, is used instead.

References:
  Sedghi, Gupta, Long, The singular values of convolutional layers, ICLR 2019.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np

from lipjax.ops.conv import PaddingLike, normalize_padding

ROUNDING_SLACK = 1e-5
EXPLICIT_LIMIT = 2048


def with_rounding_slack(value: float) -> float:
    """``value (1 + ROUNDING_SLACK)``: a float64 bound made safe for float32 evaluation."""
    return float(value) * (1.0 + ROUNDING_SLACK)


def _as_float64(array, name: str) -> np.ndarray:
    a = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf: no Lipschitz bound exists")
    return a


def dense_spectral_norm_bound(kernel) -> float:
    """Guaranteed upper bound of ``||W||_2`` for a dense kernel (any 2-D layout).

    Formula: ``sigma_max(W) (1 + ROUNDING_SLACK)``, with ``sigma_max`` from a float64 SVD.
    """
    w = _as_float64(kernel, "kernel")
    if w.ndim != 2:
        raise ValueError(f"dense kernel must be 2-D; got shape {w.shape}")
    if w.size == 0:
        return 0.0
    small = w if w.shape[0] <= w.shape[1] else w.T
    # eigvalsh of the smaller Gram matrix is several times faster than an SVD of W;
    # its backward error, relative to ||W||^2, is again O(n u).
    gram = small @ small.T
    return with_rounding_slack(math.sqrt(max(float(np.linalg.eigvalsh(gram)[-1]), 0.0)))


def _polyphase_kernel(kernel: np.ndarray, strides: Sequence[int]) -> np.ndarray:
    """Stride-``s`` HWIO kernel -> stride-1 kernel on the space-to-depth input.

    ``y[j] = sum_a K[a] x[s j + a]``; writing ``a = s q + r`` gives
    ``y[j] = sum_q sum_r K[s q + r] X_r[j + q]`` with ``X_r[m] = x[s m + r]``.
    """
    sh, sw = strides
    kh, kw, cin, cout = kernel.shape
    qh, qw = -(-kh // sh), -(-kw // sw)
    padded = np.zeros((qh * sh, qw * sw, cin, cout))
    padded[:kh, :kw] = kernel
    poly = padded.reshape(qh, sh, qw, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
    return poly.reshape(qh, qw, sh * sw * cin, cout)


def circular_conv_spectral_norm(kernel, grid: Sequence[int]) -> float:
    """Exact ``||K||_2`` of a stride-1 circular convolution on a ``grid`` (H, W) (no slack).

    Args:
      kernel: HWIO kernel with H <= grid[0] and W <= grid[1].
      grid: the spatial size of the periodic image.
    """
    k = _as_float64(kernel, "kernel")
    gh, gw = grid
    if k.shape[0] > gh or k.shape[1] > gw:
        raise ValueError(f"kernel {k.shape[:2]} larger than the grid {tuple(grid)}")
    transfer = np.fft.fft2(k, s=(gh, gw), axes=(0, 1))  # (gh, gw, cin, cout)
    singular = np.linalg.svd(transfer, compute_uv=False)
    return float(singular.max())


def _conv_pads(input_hw, kernel_hw, strides, padding) -> tuple[tuple[int, int], ...]:
    if padding in ("SAME", "VALID"):
        return tuple(jax.lax.padtype_to_pads(tuple(input_hw), tuple(kernel_hw), strides, padding))
    return padding


def explicit_conv_matrix(kernel, input_hw, strides=(1, 1), padding="SAME") -> np.ndarray:
    """The convolution as an explicit float64 matrix (rows: input coordinates, HWC order).

    Zero padding only (circular padding is handled exactly by the DFT). Size:
    ``(H W C_in) x (H' W' C_out)`` entries.
    """
    k = _as_float64(kernel, "kernel")
    h, w = input_hw
    kh, kw, cin, cout = k.shape
    n = h * w * cin
    pads = _conv_pads((h, w), (kh, kw), tuple(strides), normalize_padding(padding))
    basis = np.eye(n).reshape(n, h, w, cin)
    xp = np.pad(basis, ((0, 0), *pads, (0, 0)))
    sh, sw = strides
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    out = np.zeros((n, oh, ow, cout))
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
            out += patch @ k[a, b]
    return out.reshape(n, -1)


def conv_spectral_norm_bound(
    kernel,
    input_hw: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> float:
    """Guaranteed upper bound of the l2 operator norm of :func:`lipjax.ops.conv`.

    The convolution is the layer's real operator on ``input_hw`` images with this
    stride and padding (see the module docstring for the method and why it is sound).

    Args:
      kernel: HWIO kernel.
      input_hw: input spatial size (H, W).
      strides: (sh, sw).
      padding: ``"SAME"``, ``"VALID"``, ``"CIRCULAR"`` or explicit ((lo, hi), (lo, hi)).

    Returns:
      ``||K||_2 (1 + ROUNDING_SLACK)`` when exact (circular, stride dividing the size),
      otherwise the DFT norm of a circular convolution containing the operator.
    """
    k = _as_float64(kernel, "kernel")
    if k.ndim != 4:
        raise ValueError(f"conv kernel must be HWIO (4-D); got shape {k.shape}")
    strides = tuple(int(s) for s in strides)
    padding = normalize_padding(padding)
    h, w = (int(v) for v in input_hw)
    kh, kw = k.shape[:2]
    if padding == "CIRCULAR":
        if h % strides[0] or w % strides[1] or kh > h or kw > w:
            # a strided map is a row subset of the stride-1 one: still an upper bound
            grid = (max(h, kh), max(w, kw))
            return with_rounding_slack(circular_conv_spectral_norm(k, grid))
        padded_hw = (h, w)
    else:
        if h * w * k.shape[2] <= EXPLICIT_LIMIT:
            matrix = explicit_conv_matrix(k, (h, w), strides, padding)
            return with_rounding_slack(np.linalg.norm(matrix, 2)) if matrix.size else 0.0
        pads = _conv_pads((h, w), (kh, kw), strides, padding)
        padded_hw = tuple(
            max(n + lo + hi, kk) for n, (lo, hi), kk in zip((h, w), pads, (kh, kw), strict=True)
        )
    grid = tuple(-(-n // s) * s for n, s in zip(padded_hw, strides, strict=True))
    poly = _polyphase_kernel(k, strides)
    reduced = tuple(n // s for n, s in zip(grid, strides, strict=True))
    return with_rounding_slack(circular_conv_spectral_norm(poly, reduced))
