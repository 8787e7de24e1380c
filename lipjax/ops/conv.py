"""2-D convolutions in NHWC / HWIO layout, with zero or circular padding."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lipjax.ops import winograd

PaddingLike = str | Sequence[tuple[int, int]]


def normalize_padding(padding: PaddingLike) -> str | tuple[tuple[int, int], ...]:
    """Validates a padding spec: ``"SAME"``, ``"VALID"``, ``"CIRCULAR"`` or ((lo, hi), (lo, hi)).

    Raises:
      ValueError: for anything else.
    """
    if isinstance(padding, str):
        upper = padding.upper()
        if upper not in ("SAME", "VALID", "CIRCULAR"):
            raise ValueError(
                f"padding must be 'SAME', 'VALID', 'CIRCULAR' or ((lo, hi), (lo, hi)); got {padding!r}"
            )
        return upper
    pads = tuple(tuple(int(p) for p in pair) for pair in padding)
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(
            f"explicit padding must be ((lo, hi), (lo, hi)) of non-negative ints; got {padding!r}"
        )
    return pads


def circular_pads(kernel_hw: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Periodic extension ``((k - 1) // 2, k // 2)`` per axis used by ``"CIRCULAR"``
    (it may exceed the image: the image then repeats several times)."""
    return tuple(((k - 1) // 2, k // 2) for k in kernel_hw)


_DIMENSIONS = ("NHWC", "HWIO", "NHWC")

ALGORITHMS = ("direct", "winograd", "auto")
"""How :func:`conv` and :func:`conv_transpose` compute: ``"direct"`` is XLA's
convolution (the certified forward pass uses it); ``"winograd"`` is
:mod:`lipjax.ops.winograd` (3x3 kernels, stride 1 only); ``"auto"`` takes Winograd
where it applies on the CPU backend, direct elsewhere. Training layers use
``"auto"``: XLA's CPU backend runs the convolutions that reverse-mode autodiff
emits (kernel gradient, transposed convolution) several times slower than plain
ones, while Winograd's gradients are batched matmuls (measurements:
benchmarks/README.md). GPUs and TPUs keep their vendor convolutions: on an H100,
cuDNN's beat Winograd in the CPL-S and CPL-M train steps (50 against 79 ms, 61
against 142 ms at batch 256); TPUs were not measured."""


def check_algorithm(algorithm: str, where: str = "conv") -> str:
    """Returns ``algorithm`` if it is one of :data:`ALGORITHMS`, else raises ValueError."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{where}: algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
    return algorithm


def uses_winograd(kernel_hw, strides, algorithm: str) -> bool:
    """Whether :func:`conv` computes by Winograd: ``"winograd"`` (which then needs a 3x3 kernel and
    stride 1, else ValueError), or ``"auto"`` with those on the CPU backend."""
    check_algorithm(algorithm)
    fits = tuple(kernel_hw) == (3, 3) and tuple(strides) == (1, 1)
    if algorithm == "winograd" and not fits:
        raise ValueError(
            f"algorithm='winograd' needs a 3x3 kernel and stride 1; got kernel {tuple(kernel_hw)}, "
            f"strides {tuple(strides)}"
        )
    if algorithm == "auto":
        return fits and jax.default_backend() == "cpu"
    return algorithm == "winograd"


def _pad_spatial(x: jax.Array, pads) -> jax.Array:
    """Zero padding by ``pads``; negative entries crop (as in :func:`jax.lax.pad`)."""
    zero = jnp.zeros((), x.dtype)
    return jax.lax.pad(x, zero, ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))


def _zero_pads(input_hw, kernel_hw, strides, padding) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        return tuple(jax.lax.padtype_to_pads(tuple(input_hw), tuple(kernel_hw), tuple(strides), padding))
    return tuple(tuple(p) for p in padding)


def conv_output_hw(
    input_hw: Sequence[int],
    kernel_hw: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> tuple[int, int]:
    """Output spatial size of :func:`conv`: ``ceil(n / s)`` for ``"CIRCULAR"`` and
    ``"SAME"``, ``floor((n + lo + hi - k) / s) + 1`` for the other zero paddings.

    Raises:
      ValueError: non-positive sizes or strides, a kernel larger than the padded
        input, or padding so wide that no output window reaches the image (the
        convolution would be empty or identically 0: nothing to train or certify).
    """
    padding = normalize_padding(padding)
    input_hw, kernel_hw, strides = (tuple(int(v) for v in a) for a in (input_hw, kernel_hw, strides))
    if min(*input_hw, *kernel_hw) < 1 or len(strides) != 2 or min(strides) < 1:
        raise ValueError(
            f"conv needs positive sizes and strides; got input {input_hw}, "
            f"kernel {kernel_hw}, strides {strides}"
        )
    if padding == "CIRCULAR":
        return tuple(-(-n // s) for n, s in zip(input_hw, strides, strict=True))
    pads = _zero_pads(input_hw, kernel_hw, strides, padding)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(input_hw, pads, strict=True))
    if padded[0] < kernel_hw[0] or padded[1] < kernel_hw[1]:
        raise ValueError(
            f"kernel {kernel_hw} is larger than the padded input {padded} (input {input_hw}, "
            f"padding {padding}): the convolution has no output pixel"
        )
    out = tuple((p - k) // s + 1 for p, k, s in zip(padded, kernel_hw, strides, strict=True))
    for n, (lo, _), k, s, o in zip(input_hw, pads, kernel_hw, strides, out, strict=True):
        first = max(0, lo - k + 1)  # window starts s j in [first, last] overlap the image
        last = min(s * (o - 1), lo + n - 1)
        if -(-first // s) * s > last:
            raise ValueError(
                f"no output pixel sees the input: with padding {padding}, strides {strides} and "
                f"kernel {kernel_hw}, every window on input {input_hw} covers only padding"
            )
    return out


def _correlate(x, kernel, strides, pads, algorithm: str) -> jax.Array:
    if uses_winograd(kernel.shape[:2], strides, algorithm):
        return winograd.correlate3x3_valid(_pad_spatial(x, pads), kernel)
    return jax.lax.conv_general_dilated(x, kernel, tuple(strides), pads, dimension_numbers=_DIMENSIONS)


def _adjoint_zero(y, kernel, input_hw, strides, pads, algorithm: str) -> jax.Array:
    """Adjoint of the zero-padded correlation: with ``yd`` the stride-dilated ``y``,
    the correlation of ``yd`` with the flipped, in/out-swapped kernel, padded by
    ``k - 1 - lo`` on the left and cropped or padded on the right to the input size."""
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    transposed_pads = tuple(
        (kk - 1 - lo, n - (n_out - 1) * s - 1 + lo)
        for n, (lo, _), kk, s, n_out in zip(
            input_hw, pads, kernel.shape[:2], strides, y.shape[1:3], strict=True
        )
    )
    if uses_winograd(kernel.shape[:2], strides, algorithm):
        return winograd.correlate3x3_valid(_pad_spatial(y, transposed_pads), flipped)
    return jax.lax.conv_general_dilated(
        y, flipped, (1, 1), transposed_pads, lhs_dilation=tuple(strides), dimension_numbers=_DIMENSIONS
    )


CPU_BATCH_CHUNK = 16
"""Images per chunk in :func:`map_batch_chunks` where ``algorithm="auto"`` takes Winograd on the
CPU: 16 images of 32x32x45 make 6.6 MB of F(4x4, 3x3) tiles (11.8 MB of F(2x2, 3x3) ones), which
stay in a 32 MB L3 cache, where the whole batch's tiles stream through memory (measurements:
benchmarks/README.md)."""


def map_batch_chunks(
    fn, x: jax.Array, *args, size: int = CPU_BATCH_CHUNK, keep: Sequence[str] = ()
) -> jax.Array:
    """``fn(x, *args)`` computed over chunks of the leading (batch) axis, one after another.

    Each chunk is rematerialized in the backward pass, so its intermediates are made, used and
    dropped while they still fit the cache. ``keep``: names of intermediates, tagged in ``fn`` with
    :func:`jax.ad_checkpoint.checkpoint_name`, that the backward pass keeps instead of recomputing.
    The chunk is ``gcd(batch, size)`` images; a batch of at most ``size`` images, or one whose
    chunk would be under 4 images, is computed whole. The result equals ``fn(x, *args)`` when
    ``fn`` treats the batch entries independently.

    The chunks are written out one after another and concatenated, not looped over with
    :func:`jax.lax.map`: a loop stacks every chunk's output and kept intermediates into buffers
    that XLA zero-fills and writes slice by slice, which cost the CPL-S train step on the CPU
    10-20% (benchmarks/README.md), for a longer compile.
    """
    batch = x.shape[0]
    chunk = math.gcd(batch, size)
    if batch <= size or chunk < 4:
        return fn(x, *args)
    policy = jax.checkpoint_policies.save_only_these_names(*keep) if keep else None
    remat = jax.checkpoint(fn, policy=policy)
    return jnp.concatenate([remat(x[start : start + chunk], *args) for start in range(0, batch, chunk)])


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
    algorithm: str = "direct",
) -> jax.Array:
    """Cross-correlation ``y = K * x`` of NHWC images with an HWIO kernel.

    ``"CIRCULAR"`` wraps the image around (periodic boundary), which makes the
    operator exactly diagonalisable by the 2-D DFT; the other paddings are zero
    paddings. ``algorithm``: one of :data:`ALGORITHMS`. Plain JAX operations
    throughout, so forward- and reverse-mode differentiation both apply.
    """
    padding = normalize_padding(padding)
    strides = tuple(int(s) for s in strides)
    conv_output_hw(x.shape[1:3], kernel.shape[:2], strides, padding)  # refuses an empty output
    kernel = kernel.astype(x.dtype)
    if padding == "CIRCULAR":
        x = jnp.pad(x, ((0, 0), *circular_pads(kernel.shape[:2]), (0, 0)), mode="wrap")
        padding = ((0, 0), (0, 0))
    pads = _zero_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
    return _correlate(x, kernel, strides, pads, algorithm)


def _unwrap(z: jax.Array, axis: int, lo: int, n: int) -> jax.Array:
    """Adjoint of circular padding along ``axis``: entry ``p`` of the padded axis is
    pixel ``(p - lo) mod n``, so each entry is added back onto that pixel (any
    number of periods, for kernels larger than the image)."""
    length = z.shape[axis]
    shift = -lo % n  # entry p moves to p + shift, a multiple of n ahead of its pixel
    periods = -(-(length + shift) // n)
    widths = [(0, 0)] * z.ndim
    widths[axis] = (shift, periods * n - length - shift)
    z = jnp.pad(z, widths)
    folded = z.reshape(*z.shape[:axis], periods, n, *z.shape[axis + 1 :])
    return folded.sum(axis=axis)


def conv_transpose(
    y: jax.Array,
    kernel: jax.Array,
    input_shape: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
    algorithm: str = "direct",
) -> jax.Array:
    """Adjoint ``K^T y`` of :func:`conv` for inputs of spatial shape ``input_shape`` (H, W, C).

    The exact adjoint for every padding and stride (a strided zero-padded
    convolution's adjoint is not a plain transposed convolution in general).
    """
    padding = normalize_padding(padding)
    strides = tuple(int(s) for s in strides)
    kernel = kernel.astype(y.dtype)
    h, w = int(input_shape[0]), int(input_shape[1])
    conv_output_hw((h, w), kernel.shape[:2], strides, padding)  # refuses an empty output
    if padding == "CIRCULAR":
        wrap = circular_pads(kernel.shape[:2])
        full_hw = (h + sum(wrap[0]), w + sum(wrap[1]))
        x = _adjoint_zero(y, kernel, full_hw, strides, ((0, 0), (0, 0)), algorithm)
        return _unwrap(_unwrap(x, 1, wrap[0][0], h), 2, wrap[1][0], w)
    pads = _zero_pads((h, w), kernel.shape[:2], strides, padding)
    return _adjoint_zero(y, kernel, (h, w), strides, pads, algorithm)
