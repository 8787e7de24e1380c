"""2-D convolutions in NHWC / HWIO layout, with zero or circular padding."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

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


def circular_pads(kernel_hw: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Periodic extension ``((k - 1) // 2, k // 2)`` per axis used by ``"CIRCULAR"``
    (it may exceed the image: the image then repeats several times)."""
    return tuple(((k - 1) // 2, k // 2) for k in kernel_hw)


_DIMENSIONS = ("NHWC", "HWIO", "NHWC")

# XLA's CPU backend runs convolutions whose kernel layout is not plain HWIO (the
# ones autodiff and ``jax.linear_transpose`` emit: in/out swapped, or batch as the
# contracted axis) tens of times slower inside loops such as ``nn.scan``. The
# convolution below and its adjoint therefore carry custom VJPs whose backward
# passes are again plain-HWIO convolutions, built with explicit flips and
# transposes. Use reverse mode (``jax.grad``, ``jax.jacrev``) through them.


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


def _kernel_gradient(x, g, strides, pads, kernel_hw):
    """``dK[a, b, i, o] = sum_{n, j} x_pad[n, s j + (a, b), i] g[n, j, o]`` with plain layouts."""
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    lhs = xp.transpose(3, 1, 2, 0)  # (I, Hp, Wp, N): batch = in-channels, features = samples
    rhs = g.transpose(1, 2, 0, 3)  # (Ho, Wo, N, O)
    out = jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides=(1, 1),
        padding="VALID",
        rhs_dilation=tuple(strides),
        dimension_numbers=_DIMENSIONS,
    )
    return out[:, : kernel_hw[0], : kernel_hw[1], :].transpose(1, 2, 0, 3)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_zero(x, kernel, strides, pads):
    return jax.lax.conv_general_dilated(x, kernel, tuple(strides), pads, dimension_numbers=_DIMENSIONS)


def _conv_zero_fwd(x, kernel, strides, pads):
    return _conv_zero(x, kernel, strides, pads), (x, kernel)


def _conv_zero_bwd(strides, pads, residuals, g):
    x, kernel = residuals
    dx = _adjoint_zero(g, kernel, tuple(x.shape[1:3]), strides, pads)
    return dx, _kernel_gradient(x, g, strides, pads, kernel.shape[:2]).astype(kernel.dtype)


_conv_zero.defvjp(_conv_zero_fwd, _conv_zero_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _adjoint_zero(y, kernel, input_hw, strides, pads):
    """Adjoint of :func:`_conv_zero`: with ``yd`` the stride-dilated ``y``, the
    correlation of ``yd`` with the flipped, in/out-swapped kernel, padded by
    ``k - 1 - lo`` on the left and cropped or padded on the right to the input size."""
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    transposed_pads = [
        (kk - 1 - lo, n - (n_out - 1) * s - 1 + lo)
        for n, (lo, _), kk, s, n_out in zip(
            input_hw, pads, kernel.shape[:2], strides, y.shape[1:3], strict=True
        )
    ]
    return jax.lax.conv_general_dilated(
        y, flipped, (1, 1), transposed_pads, lhs_dilation=tuple(strides), dimension_numbers=_DIMENSIONS
    )


def _adjoint_zero_fwd(y, kernel, input_hw, strides, pads):
    return _adjoint_zero(y, kernel, input_hw, strides, pads), (y, kernel)


def _adjoint_zero_bwd(input_hw, strides, pads, residuals, g):
    # <K^T y, g> = <y, K g>: the adjoint of the adjoint is the convolution, and the
    # kernel gradient is that of the convolution applied to g with output gradient y.
    y, kernel = residuals
    dy = _conv_zero(g, kernel, strides, pads)
    return dy, _kernel_gradient(g, y, strides, pads, kernel.shape[:2]).astype(kernel.dtype)


_adjoint_zero.defvjp(_adjoint_zero_fwd, _adjoint_zero_bwd)


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
    strides = tuple(int(s) for s in strides)
    conv_output_hw(x.shape[1:3], kernel.shape[:2], strides, padding)  # refuses an empty output
    kernel = kernel.astype(x.dtype)
    if padding == "CIRCULAR":
        x = jnp.pad(x, ((0, 0), *circular_pads(kernel.shape[:2]), (0, 0)), mode="wrap")
        padding = ((0, 0), (0, 0))
    pads = _zero_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
    return _conv_zero(x, kernel, strides, pads)


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
        x = _adjoint_zero(y, kernel, full_hw, strides, ((0, 0), (0, 0)))
        return _unwrap(_unwrap(x, 1, wrap[0][0], h), 2, wrap[1][0], w)
    pads = _zero_pads((h, w), kernel.shape[:2], strides, padding)
    return _adjoint_zero(y, kernel, (h, w), strides, pads)
