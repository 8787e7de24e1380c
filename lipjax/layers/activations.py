"""Gradient-norm-preserving activation layers (GroupSort, MaxMin, FullSort, Householder)."""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from lipjax import ops
from lipjax.layers.base import LipschitzLayer, check_input, check_positive
from lipjax.layers.kinds import ExportKind, Record, exact_rounding, exactly_one, one_with_rounding, register
from lipjax.ops import rounding as fe


def _activation_rounding(arrays, config, input_shape, input_norm, u):
    """relu: exact; leaky_relu: ``gamma_2 ||x||``; others: no bound (see
    :func:`lipjax.ops.rounding.activation`)."""
    return fe.activation(fe.start(input_norm), config["name"], u)


GROUP_SORT = register(
    ExportKind(
        "group_sort",
        apply=lambda x, a, c: ops.group_sort(x, c["group_size"]),
        lipschitz=exactly_one,
        config=("group_size",),
        rounding=exact_rounding,
    )
)
FULL_SORT = register(
    ExportKind(
        "full_sort", apply=lambda x, a, c: ops.full_sort(x), lipschitz=exactly_one, rounding=exact_rounding
    )
)
HOUSEHOLDER = register(
    ExportKind(
        "householder",
        apply=lambda x, a, c: ops.householder(x, a["theta"]),
        lipschitz=one_with_rounding,
        arrays=("theta",),
        # No rounding bound: v = (cos theta, sin theta) comes from a math library without a
        # guaranteed error, so the computed reflection is not the exact network's.
    )
)
ACTIVATION = register(
    ExportKind(
        "activation",
        apply=lambda x, a, c: ops.get_activation(c["name"])(x),
        lipschitz=exactly_one,
        config=("name",),
        rounding=_activation_rounding,
    )
)


class GroupSort(LipschitzLayer):
    """Sorts groups of ``group_size`` consecutive features (last axis); 1-Lipschitz."""

    group_size: int = 2

    def __post_init__(self):
        check_positive("group_size", self.group_size, "GroupSort")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "GroupSort")
        return ops.group_sort(x, self.group_size)

    def export_record(self, params, input_shape) -> Record:
        return GROUP_SORT.record({"group_size": self.group_size})


def MaxMin() -> GroupSort:  # noqa: N802 - a layer constructor, named like one
    """GroupSort2 / MaxMin: sorts feature pairs."""
    return GroupSort(group_size=2)


GroupSort2 = MaxMin


class FullSort(LipschitzLayer):
    """Sorts all features of the last axis; 1-Lipschitz."""

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "FullSort")
        return ops.full_sort(x)

    def export_record(self, params, input_shape) -> Record:
        return FULL_SORT.record()


class Householder(LipschitzLayer):
    """Householder activation on feature pairs, one learned angle per pair; 1-Lipschitz."""

    theta_init: nn.initializers.Initializer = nn.initializers.constant(np.pi / 2)

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "Householder")
        if x.shape[-1] % 2:
            raise ValueError(f"Householder needs an even number of features; got {x.shape[-1]}")
        theta = self.param("theta", self.theta_init, (x.shape[-1] // 2,))
        return ops.householder(x, theta)

    def export_record(self, params, input_shape) -> Record:
        return HOUSEHOLDER.record(theta=params["theta"])


class Activation(LipschitzLayer):
    """An element-wise monotone 1-Lipschitz activation by name (e.g. ``"relu"``)."""

    name_: str = "relu"

    def __post_init__(self):
        ops.get_activation(self.name_)
        super().__post_init__()

    def __call__(self, x: jax.Array, update_stats: bool = False):
        return ops.get_activation(self.name_)(x)

    def export_record(self, params, input_shape) -> Record:
        return ACTIVATION.record({"name": self.name_})
