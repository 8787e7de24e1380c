"""2-D convolutions in NHWC / HWIO layout, with zero or circular padding."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

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


def _circular_pads(kernel_hw: Sequence[int]) -> tuple[tuple[int, int], ...]:
    return tuple(((k - 1) // 2, k // 2) for k in kernel_hw)


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> jax.Array:
    """Cross-correlation ``y = K * x`` of NHWC images with an HWIO kernel.

    ``"CIRCULAR"`` wraps the image around (periodic boundary), which makes the
    operator exactly diagonalisable by the 2-D DFT; the other paddings are zero paddings.
    """
    padding = normalize_padding(padding)
    if padding == "CIRCULAR":
        pads = _circular_pads(kernel.shape[:2])
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode="wrap")
        padding = "VALID"
    return jax.lax.conv_general_dilated(
        x,
        kernel.astype(x.dtype),
        window_strides=tuple(strides),
        padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def conv_transpose(
    y: jax.Array,
    kernel: jax.Array,
    input_shape: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
) -> jax.Array:
    """Adjoint ``K^T y`` of :func:`conv` for inputs of spatial shape ``input_shape`` (H, W, C).

    Computed with :func:`jax.linear_transpose`, so it is the exact adjoint for
    every padding and stride (a strided zero-padded convolution's adjoint is not
    a plain transposed convolution in general).
    """
    batch = y.shape[0]
    primal = jax.ShapeDtypeStruct((batch, *input_shape), y.dtype)
    (x,) = jax.linear_transpose(lambda v: conv(v, kernel, strides, padding), primal)(y)
    return x
