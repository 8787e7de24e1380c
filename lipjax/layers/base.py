"""Shared pieces of lipjax layers: the layer base class, the statistics collection, input checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.kinds import Record

POWER_ITERATION = "power_iteration"
"""Name of the mutable Flax collection of training statistics (power-iteration
vectors, running means), updated when ``update_stats=True`` and never differentiated."""


class LipschitzLayer(nn.Module):
    """Base class of every lipjax layer: a Flax module with a certified export.

    Subclasses take ``update_stats`` in ``__call__`` (``True`` while training:
    statistics in the :data:`POWER_ITERATION` collection are updated) and
    implement :meth:`export_record`. :class:`lipjax.layers.Sequential` and
    :func:`lipjax.export.export` recognise lipjax layers by this class.
    """

    uses_statistics = False
    """Whether :meth:`export_record` reads the layer's running statistics (e.g. a
    running mean); most layers only need their parameters."""

    def export_record(self, params: Mapping[str, Any], input_shape: tuple[int, ...]) -> Record:
        """The layer's exported record, from its trained ``params`` and one input's shape.

        Layers with ``uses_statistics`` also receive ``statistics=`` (their entries of the
        :data:`POWER_ITERATION` collection).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement export_record")


def check_input(x: jax.Array, rank: int | tuple[int, ...], layer: str, features: int | None = None):
    """Raises a clear error for a wrong rank, a non-float dtype, a wrong feature
    count, or (on concrete arrays, outside ``jit``) NaN / inf values."""
    ranks = (rank,) if isinstance(rank, int) else rank
    if not hasattr(x, "ndim") or x.ndim not in ranks:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{layer} expects inputs of rank {' or '.join(map(str, ranks))}; got shape {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{layer} expects floating-point inputs; got dtype {x.dtype}")
    if features is not None and x.shape[-1] != features:
        raise ValueError(f"{layer} expects {features} features on the last axis; got shape {x.shape}")
    if not isinstance(x, jax.core.Tracer) and not np.isfinite(np.asarray(x)).all():
        raise ValueError(f"{layer} received NaN or inf inputs")


def check_positive(name: str, value, layer: str, allow_zero: bool = False):
    """Raises ``ValueError`` unless ``value`` is a positive (or non-negative) number."""
    if not isinstance(value, int | float) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{layer}: {name} must be {bound}; got {value!r}")


class PowerIterationMixin:
    """Spectral-norm estimate with the vector kept in the ``power_iteration`` collection.

    ``update_stats=True`` (training) runs ``power_iters`` warm-started steps with
    gradients stopped through the vector, stores the new vector, and returns
    ``sigma = ||A u||`` differentiable in the weights. ``update_stats=False``
    (evaluation) reads the stored vector and changes nothing.
    """

    def spectral_estimate(
        self: nn.Module,
        operator: Callable[[jax.Array], tuple[Callable, Callable]],
        kernel: jax.Array,
        vector_shape: tuple[int, ...],
        num_iters: int,
        update_stats: bool,
    ) -> jax.Array:
        if not self.is_initializing() and not self.has_variable(POWER_ITERATION, "u"):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the variables lack the "
                f"'{POWER_ITERATION}' collection; pass all variables returned by init()"
            )
        u_var = self.variable(
            POWER_ITERATION,
            "u",
            lambda: ops.l2_normalize(jax.random.normal(self.make_rng("params"), vector_shape)),
        )
        if tuple(u_var.value.shape) != tuple(vector_shape):
            raise ValueError(
                f"{type(self).__name__} '{self.name}': stored power-iteration vector has shape "
                f"{u_var.value.shape} but this input needs {vector_shape}; the input size changed"
            )
        u = u_var.value
        if update_stats or self.is_initializing():
            frozen = jax.lax.stop_gradient(kernel)
            u, _ = ops.power_iteration(*operator(frozen), u, num_iters)
            u = jax.lax.stop_gradient(u)
            if update_stats:
                u_var.value = u
        forward, _ = operator(kernel)
        return jnp.linalg.norm(forward(u.astype(kernel.dtype)).ravel())


def check_conv_geometry(kernel_size, strides, padding, layer: str):
    """Raises ``ValueError`` naming a bad ``kernel_size``, ``strides`` or ``padding``."""
    if len(tuple(kernel_size)) != 2 or min(kernel_size) < 1:
        raise ValueError(f"{layer}: kernel_size must be two positive ints; got {kernel_size}")
    if len(tuple(strides)) != 2 or min(strides) < 1:
        raise ValueError(f"{layer}: strides must be two positive ints; got {strides}")
    try:
        ops.normalize_padding(padding)
    except ValueError as err:
        raise ValueError(f"{layer}: {err}") from None
