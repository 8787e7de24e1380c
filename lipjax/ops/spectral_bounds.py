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
  ``K_hat(w) = sum_{a,b} K[a, b] exp(-2 pi i (a w_1 + b w_2) / n)``, ``w`` on
  the ``n x n`` frequency grid. A kernel larger than the image is first folded
  onto the grid (taps ``a`` and ``a + n`` read the same pixel); evaluating its
  DFT on any other grid is *not* a bound.
* Strided convolution: the polyphase (space-to-depth) decomposition turns a
  stride-``s`` convolution on an ``n``-grid into a stride-1 convolution on an
  ``n/s``-grid with ``s^2 C_in`` input channels and a ``ceil(k/s)`` kernel; the
  same DFT formula then applies exactly when ``s`` divides ``n``. When it does
  not, a strided circular map is a row subset of the stride-1 one.
* Zero padding: the zero-padded convolution is a sub-matrix (rows and
  columns) of a circular convolution on a grid large enough that nothing wraps
  around (``N >= padded size``, rounded up to the stride). A sub-matrix has a
  smaller or equal norm, so the DFT value on that grid is a sound upper bound;
  it exceeds the exact value by about 0.1% at 32 x 32 inputs (0.7% at 16 x 16).
* Small inputs (at most ``EXPLICIT_LIMIT`` input coordinates), wherever the DFT
  is not exact: the exact norm of the explicit operator matrix, built in float64.

References:
  Sedghi, Gupta, Long, The singular values of convolutional layers, ICLR 2019.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import jax
import numpy as np

from lipjax.ops.conv import PaddingLike, circular_pads, conv_output_hw, normalize_padding

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
      kernel: HWIO kernel with H <= grid[0] and W <= grid[1] (fold a larger one
        onto the grid with :func:`fold_kernel` first).
      grid: the spatial size of the periodic image.

    Raises:
      ValueError: a kernel larger than the grid (its DFT on this grid would crop
        taps, not alias them, and the value would not be the operator's norm).
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


def fold_kernel(kernel, grid: Sequence[int]) -> np.ndarray:
    """Aliases a kernel onto a periodic ``grid``: ``K'[r] = sum_{a = r mod grid} K[a]``.

    On a periodic image of size ``grid`` the taps ``a`` and ``a + grid`` read the
    same pixel, so a circular convolution with a kernel larger than the image is
    exactly the circular convolution with the folded kernel, of size
    ``min(k, grid)`` per axis.
    """
    k = np.asarray(kernel)
    for axis, n in enumerate(grid):
        size = k.shape[axis]
        if size <= n:
            continue
        blocks = -(-size // n)
        pad = [(0, 0)] * k.ndim
        pad[axis] = (0, blocks * n - size)
        k = np.pad(k, pad)
        k = k.reshape(*k.shape[:axis], blocks, n, *k.shape[axis + 1 :]).sum(axis=axis)
    return k


def explicit_conv_matrix(kernel, input_hw, strides=(1, 1), padding="SAME") -> np.ndarray:
    """The convolution :func:`lipjax.ops.conv` as an explicit float64 matrix.

    Rows are input coordinates and columns output coordinates, both in HWC order:
    ``(H W C_in) x (H' W' C_out)`` entries (``H' = 0`` when the kernel does not fit
    in the padded input). Every padding: zero paddings, and ``"CIRCULAR"``, where the
    image is extended periodically by ``((k - 1) // 2, k // 2)`` pixels, any number of
    periods when the kernel is larger than the image.
    """
    k = _as_float64(kernel, "kernel")
    h, w = input_hw
    kh, kw, cin, cout = k.shape
    n = h * w * cin
    sh, sw = strides
    padding = normalize_padding(padding)
    basis = np.eye(n).reshape(n, h, w, cin)
    if padding == "CIRCULAR":
        xp = np.pad(basis, ((0, 0), *circular_pads((kh, kw)), (0, 0)), mode="wrap")
    else:
        pads = _conv_pads((h, w), (kh, kw), (sh, sw), padding)
        xp = np.pad(basis, ((0, 0), *pads, (0, 0)))
    oh = max((xp.shape[1] - kh) // sh + 1, 0)
    ow = max((xp.shape[2] - kw) // sw + 1, 0)
    out = np.zeros((n, oh, ow, cout))
    if oh and ow:
        for a in range(kh):
            for b in range(kw):
                patch = xp[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
                out += patch @ k[a, b]
    return out.reshape(n, oh * ow * cout)


def _matrix_norm(matrix: np.ndarray) -> float:
    return float(np.linalg.norm(matrix, 2)) if matrix.size else 0.0


def _strided_circular_dft_norm(kernel: np.ndarray, grid: tuple[int, int], strides) -> float:
    """Exact norm of ``y[j] = sum_a K[a] x[(s j + a) mod grid]``, ``j < grid / s``, when
    ``s`` divides ``grid`` and ``k <= grid``: the polyphase kernel on the ``grid / s`` torus."""
    poly = _polyphase_kernel(kernel, strides)
    reduced = tuple(n // s for n, s in zip(grid, strides, strict=True))
    return circular_conv_spectral_norm(poly, reduced)


_CONV_BOUNDS: dict[tuple, float] = {}
_CONV_BOUNDS_LIMIT = 512


def conv_spectral_norm_bound(
    kernel,
    input_hw: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> float:
    """:func:`conv_operator_norm_bound`, memoised on the kernel's exact bytes and the geometry.

    The rounding analysis (:mod:`lipjax.ops.rounding`) asks for the same layers' bounds
    again; an explicit-matrix SVD is worth computing once.
    """
    k = np.ascontiguousarray(np.asarray(kernel))
    key = (
        hashlib.sha256(k.tobytes()).hexdigest(),
        k.shape,
        k.dtype.str,
        tuple(int(n) for n in input_hw),
        tuple(int(s) for s in strides),
        repr(padding),
    )
    if key not in _CONV_BOUNDS:
        if len(_CONV_BOUNDS) >= _CONV_BOUNDS_LIMIT:
            _CONV_BOUNDS.clear()
        _CONV_BOUNDS[key] = conv_operator_norm_bound(k, input_hw, strides, padding)
    return _CONV_BOUNDS[key]


def conv_operator_norm_bound(
    kernel,
    input_hw: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> float:
    """Guaranteed upper bound of the l2 operator norm of :func:`lipjax.ops.conv`.

    The convolution is the layer's real operator on ``input_hw`` images with this
    stride and padding; every kernel size, image size, stride and padding that
    :func:`lipjax.ops.conv` accepts is covered, by one of these methods (all in
    float64, the result multiplied by ``1 + ROUNDING_SLACK``):

    * ``"CIRCULAR"``: the kernel is first folded onto the ``H x W`` torus
      (:func:`fold_kernel`; a kernel larger than the image aliases its taps). When
      the stride divides the size: exact, by the DFT of the polyphase kernel.
      Otherwise: the explicit matrix on small inputs, else the stride-1 DFT norm,
      of which the strided map is a row subset;
    * zero padding, at most ``EXPLICIT_LIMIT`` input coordinates (``H W C_in``):
      exact, the norm of the explicit operator matrix (:func:`explicit_conv_matrix`);
    * zero padding, larger inputs: the DFT norm of a circular convolution on a grid
      large enough that nothing wraps around (the padded size, rounded up to the
      stride), of which the operator is a sub-matrix; 0.1% above the exact value at
      32 x 32 inputs.

    Args:
      kernel: HWIO kernel.
      input_hw: input spatial size (H, W).
      strides: (sh, sw), positive.
      padding: ``"SAME"``, ``"VALID"``, ``"CIRCULAR"`` or explicit ((lo, hi), (lo, hi)).

    Returns:
      ``||K||_2 (1 + ROUNDING_SLACK)`` on the exact paths, an upper bound of it otherwise.

    Raises:
      ValueError: non-finite kernel, wrong rank, non-positive sizes or strides, a
        kernel larger than the padded input, or no output window reaching the image
        (:func:`lipjax.ops.conv` refuses these too; see ``conv_output_hw``).
    """
    k = _as_float64(kernel, "kernel")
    if k.ndim != 4:
        raise ValueError(f"conv kernel must be HWIO (4-D); got shape {k.shape}")
    strides = tuple(int(s) for s in strides)
    padding = normalize_padding(padding)
    h, w = (int(v) for v in input_hw)
    conv_output_hw((h, w), k.shape[:2], strides, padding)  # the same refusals as the op
    if min(k.shape[2:]) < 1:
        raise ValueError(f"conv kernel has no channels: shape {k.shape}")
    divides = h % strides[0] == 0 and w % strides[1] == 0
    if padding == "CIRCULAR" and divides:
        return with_rounding_slack(_strided_circular_dft_norm(fold_kernel(k, (h, w)), (h, w), strides))
    if h * w * k.shape[2] <= EXPLICIT_LIMIT:
        return with_rounding_slack(_matrix_norm(explicit_conv_matrix(k, (h, w), strides, padding)))
    if padding == "CIRCULAR":
        return with_rounding_slack(circular_conv_spectral_norm(fold_kernel(k, (h, w)), (h, w)))
    kh, kw = k.shape[:2]
    pads = _conv_pads((h, w), (kh, kw), strides, padding)
    padded_hw = tuple(n + lo + hi for n, (lo, hi) in zip((h, w), pads, strict=True))
    grid = tuple(-(-n // s) * s for n, s in zip(padded_hw, strides, strict=True))
    return with_rounding_slack(_strided_circular_dft_norm(k, grid, strides))
