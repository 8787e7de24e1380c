"""Centering: layer centering (an orthogonal projection) and batch centering (a translation).

* Layer centering ``y = x - mean_{axes}(x)`` per example. Within each group of
  ``m`` coordinates averaged together it is ``P = I - (1/m) 1 1^T``, the orthogonal
  projection onto the vectors of zero mean: symmetric, ``P^2 = P``, eigenvalues 0
  and 1, so its Lipschitz constant is exactly 1 (0 when ``m = 1``).
* Batch centering ``y = x - mu`` with the running mean ``mu`` at evaluation: a
  translation, an isometry, Lipschitz constant exactly 1. In training the batch
  mean couples the examples of a batch (``x_i - mean_j x_j`` is again a projection,
  of the whole batch); only the evaluation map is a per-example function, and
  it is the one that is exported and certified.

Users of deel-torchlip and orthogonium use them in place of batch normalisation,
whose division by a standard deviation is not 1-Lipschitz.

References:
  deel-torchlip ``LayerCentering`` / ``BatchCentering``; orthogonium
  ``LayerCentering2D`` / ``BatchCentering2D`` (same maths, written here from the formulas).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lipjax.ops.spectral_bounds import with_rounding_slack


def _feature_axes(x: jax.Array, axes: Sequence[int], what: str) -> tuple[int, ...]:
    normalized = []
    for axis in axes:
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"{what}: axis {axis} out of range for an input of shape {tuple(x.shape)}")
        normalized.append(axis % x.ndim)
    if 0 in normalized:
        raise ValueError(f"{what} must not average over the batch axis 0; got axes {tuple(axes)}")
    if not normalized:
        raise ValueError(f"{what} needs at least one axis to average over")
    return tuple(sorted(set(normalized)))


def layer_centering(x: jax.Array, axes: Sequence[int] = (-1,)) -> jax.Array:
    """``y = x - mean(x over axes)`` per example: an orthogonal projection, Lipschitz 1.

    Args:
      x: batched inputs, batch axis 0.
      axes: the feature axes averaged together (``(-1,)``: over the features of a
        dense input; ``(1, 2)``: over the pixels of each channel of an NHWC image).

    Returns:
      same shape as ``x``.
    """
    axes = _feature_axes(x, axes, "layer centering")
    return x - jnp.mean(x, axis=axes, keepdims=True)


def batch_mean(x: jax.Array, axes: Sequence[int] = (0,)) -> jax.Array:
    """Mean over the batch axis 0 and, for images, the spatial axes: one value per channel.

    Args:
      x: batched inputs.
      axes: reduced axes, must include 0 (``(0,)`` dense, ``(0, 1, 2)`` NHWC images).

    Returns:
      shape ``x.shape[-1:]`` when every axis but the last is reduced, in general
      ``x.shape`` without the reduced axes.
    """
    normalized = tuple(sorted({a % x.ndim for a in axes}))
    if 0 not in normalized:
        raise ValueError(f"batch centering statistics must reduce the batch axis 0; got axes {tuple(axes)}")
    return jnp.mean(x, axis=normalized)


def update_running_mean(running: jax.Array, mean: jax.Array, momentum: float = 0.9) -> jax.Array:
    """``momentum * running + (1 - momentum) * mean`` (exponential moving average)."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch centering momentum must be in [0, 1]; got {momentum}")
    if running.shape != mean.shape:
        raise ValueError(f"running mean shape {running.shape} differs from the batch mean's {mean.shape}")
    return momentum * running + (1.0 - momentum) * mean


def batch_centering(x: jax.Array, mean: jax.Array) -> jax.Array:
    """``y = x - mean`` (broadcast over the last axes): a translation, Lipschitz exactly 1.

    Args:
      x: batched inputs.
      mean: the running (evaluation) or batch (training) mean, e.g. shape (channels,).
    """
    if mean.ndim >= x.ndim or x.shape[x.ndim - mean.ndim :] != mean.shape:
        raise ValueError(
            f"batch centering mean of shape {mean.shape} does not broadcast over the trailing "
            f"axes of inputs {tuple(x.shape)}"
        )
    return x - mean


def centering_lipschitz_bound() -> float:
    """The exported constant of either centering: exactly 1, with the float32 rounding slack."""
    return with_rounding_slack(1.0)
