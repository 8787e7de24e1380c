"""Flax linen layers with a certified Lipschitz constant.

Every layer takes ``update_stats`` in ``__call__`` (``True`` while training: the
power-iteration vectors in the :data:`POWER_ITERATION` collection are updated,
so call ``apply(..., mutable=[POWER_ITERATION])``) and implements
``export_record(params, state, input_shape)`` used by :mod:`lipjax.export`.

| layer | Lipschitz (l2) |
|---|---|
| ConvexPotentialDense / ConvexPotentialConv | 1 (``max(1, h ||W||^2 - 1)`` in general) |
| SpectralDense / SpectralConv / FrobeniusDense | 1 (certified on export) |
| NormalizedDense (LLN head) | ``||W_normalised||_2`` |
| GroupSort / MaxMin / FullSort / Householder | 1, gradient-norm preserving |
| ChannelPad / Flatten / InvertibleDownsample | 1, isometries |
| ChannelTruncate / ScaledAvgPool / ScaledL2NormPool | 1 |
| Normalize | ``1 / min(std)`` |
"""

from lipjax.layers.activations import (
    Activation,
    FullSort,
    GroupSort,
    GroupSort2,
    Householder,
    MaxMin,
)
from lipjax.layers.base import POWER_ITERATION
from lipjax.layers.containers import Repeat, Sequential
from lipjax.layers.convex_potential import ConvexPotentialConv, ConvexPotentialDense
from lipjax.layers.reshape import (
    ChannelPad,
    ChannelTruncate,
    Flatten,
    InvertibleDownsample,
    Normalize,
    ScaledAvgPool,
    ScaledL2NormPool,
)
from lipjax.layers.spectral import FrobeniusDense, NormalizedDense, SpectralConv, SpectralDense

__all__ = [
    "POWER_ITERATION",
    "Activation",
    "ChannelPad",
    "ChannelTruncate",
    "ConvexPotentialConv",
    "ConvexPotentialDense",
    "Flatten",
    "FrobeniusDense",
    "FullSort",
    "GroupSort",
    "GroupSort2",
    "Householder",
    "InvertibleDownsample",
    "MaxMin",
    "Normalize",
    "NormalizedDense",
    "Repeat",
    "ScaledAvgPool",
    "ScaledL2NormPool",
    "Sequential",
    "SpectralConv",
    "SpectralDense",
]
