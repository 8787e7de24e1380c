"""Flax linen layers with a certified Lipschitz constant.

Every layer subclasses :class:`LipschitzLayer`: it takes ``update_stats`` in
``__call__`` (``True`` while training: the statistics in the
:data:`POWER_ITERATION` collection are updated, so call
``apply(..., mutable=[POWER_ITERATION])``) and implements
``export_record(params, input_shape)``, which returns a record of one of the
exported kinds declared next to it (:mod:`lipjax.layers.kinds`).

Adding a layer is a local change: its maths in :mod:`lipjax.ops`, its module and
its :class:`ExportKind` declaration in one file here, one row in the
exact-Jacobian test table (``tests/test_layers.py``).

| layer | Lipschitz (l2) |
|---|---|
| ConvexPotentialDense / ConvexPotentialConv | 1 (``max(1, h ||W||^2 - 1)`` in general) |
| ConstrainedDense / ConstrainedConv | certified on the exported kernel (any ``ops.KernelConstraint``) |
| SpectralDense / SpectralConv / FrobeniusDense | 1 (certified on export) |
| SLLDense / SLLConv | 1 (``max(1, ||W diag(2/t)^{1/2}||^2 - 1)`` on the exported arrays) |
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
from lipjax.layers.base import POWER_ITERATION, LipschitzLayer
from lipjax.layers.constrained import ConstrainedConv, ConstrainedDense
from lipjax.layers.containers import Repeat, Sequential
from lipjax.layers.convex_potential import ConvexPotentialConv, ConvexPotentialDense
from lipjax.layers.kinds import KINDS, ExportKind, Record, register
from lipjax.layers.reshape import (
    ChannelPad,
    ChannelTruncate,
    Flatten,
    InvertibleDownsample,
    Normalize,
    ScaledAvgPool,
    ScaledL2NormPool,
)
from lipjax.layers.sll import SLLConv, SLLDense
from lipjax.layers.spectral import FrobeniusDense, NormalizedDense, SpectralConv, SpectralDense

__all__ = [
    "KINDS",
    "POWER_ITERATION",
    "Activation",
    "ChannelPad",
    "ChannelTruncate",
    "ConstrainedConv",
    "ConstrainedDense",
    "ConvexPotentialConv",
    "ConvexPotentialDense",
    "ExportKind",
    "Flatten",
    "FrobeniusDense",
    "FullSort",
    "GroupSort",
    "GroupSort2",
    "Householder",
    "InvertibleDownsample",
    "LipschitzLayer",
    "MaxMin",
    "Normalize",
    "NormalizedDense",
    "Record",
    "Repeat",
    "ScaledAvgPool",
    "ScaledL2NormPool",
    "SLLConv",
    "SLLDense",
    "Sequential",
    "SpectralConv",
    "SpectralDense",
    "register",
]
