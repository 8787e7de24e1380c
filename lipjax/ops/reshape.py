"""1-Lipschitz shape changes: channel padding/truncation, pooling, pixel unshuffle."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def channel_pad(x: jax.Array, channels: int) -> jax.Array:
    """Appends zero channels up to ``channels`` (an isometry; Meunier et al. §4.2)."""
    extra = channels - x.shape[-1]
    if extra < 0:
        raise ValueError(f"cannot pad {x.shape[-1]} channels down to {channels}")
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)])


def channel_truncate(x: jax.Array, channels: int) -> jax.Array:
    """Keeps the first ``channels`` features of the last axis (a projection: 1-Lipschitz)."""
    if channels > x.shape[-1]:
        raise ValueError(f"cannot truncate {x.shape[-1]} features to {channels}")
    return x[..., :channels]


def flatten(x: jax.Array) -> jax.Array:
    """(N, ...) -> (N, prod(...)); an isometry."""
    return x.reshape(x.shape[0], -1)


def _windows(x: jax.Array, window: int) -> jax.Array:
    n, h, w, c = x.shape
    if h % window or w % window:
        raise ValueError(f"pool window {window} must divide the spatial size {h}x{w}")
    return x.reshape(n, h // window, window, w // window, window, c)


def scaled_avg_pool(x: jax.Array, window: int) -> jax.Array:
    """Non-overlapping average pooling multiplied by ``window`` (sum / window).

    The plain average over k x k disjoint windows has l2 norm ``1 / k``; scaling
    by ``k`` makes it exactly 1-Lipschitz (the CPL code's 4x4 pool, divisor 4).
    """
    return _windows(x, window).sum(axis=(2, 4)) / window


def scaled_l2_norm_pool(x: jax.Array, window: int) -> jax.Array:
    """Non-overlapping L2-norm pooling: ``sqrt(sum over window of x^2)`` (1-Lipschitz).

    The l2 norm of each disjoint block is 1-Lipschitz and blocks are disjoint, so the
    whole map is 1-Lipschitz (deel-lip's ScaledL2NormPooling2D). A tiny epsilon
    keeps the gradient finite at 0 without changing the value by more than ``1e-6``.
    """
    squares = jnp.square(_windows(x, window)).sum(axis=(2, 4))
    return jnp.sqrt(squares + 1e-12) - 1e-6


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
    """Invertible down-sampling (space-to-depth): (N, H, W, C) -> (N, H/f, W/f, C f^2).

    A permutation of coordinates, hence an isometry.
    """
    n, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"down-sampling factor {factor} must divide the spatial size {h}x{w}")
    x = x.reshape(n, h // factor, factor, w // factor, factor, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // factor, w // factor, factor * factor * c)
