"""Flax linen layers with a certified Lipschitz constant.

Every layer subclasses :class:`LipschitzLayer`: it takes ``update_stats`` in
``__call__`` (``True`` while training: the statistics in the
:data:`POWER_ITERATION` collection are updated, so call
``apply(..., mutable=[POWER_ITERATION])``) and implements
``export_record(params, input_shape)``, which returns a record of one of the
exported kinds declared next to it (:mod:`lipjax.layers.kinds`).

Adding a layer is a local change: its maths in :mod:`lipjax.ops`, its module and
its :class:`ExportKind` declaration in one file here, its public name in this
``__init__``, and one row in the exact-Jacobian test table
(``tests/test_layers.py``, whose completeness over :data:`KINDS` is tested).

| layer | Lipschitz (l2) |
|---|---|
| ConvexPotentialDense / ConvexPotentialConv | 1 (``max(1, h ||W||^2 - 1)`` in general) |
| ConstrainedDense / ConstrainedConv | certified on the exported kernel (any ``ops.KernelConstraint``) |
| SpectralDense / SpectralConv / FrobeniusDense | 1 (certified on export) |
| AOLDense / AOLConv | <= 1 (AOL rescaling; certified on the exported kernel) |
| CayleyDense / CayleyConv | 1 (orthogonal; certified: 1 + measured deviation) |
| SOCDense / SOCConv | 1 (truncated exponential; certified: 1 + Taylor remainder bound) |
| ConvexPotentialFlow (``depth`` x [CPL step, Cayley / exp step]) | 1 (product of the steps' bounds) |
| LayerCentering / BatchCentering | 1 (a projection / a translation at evaluation) |
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
from lipjax.layers.aol import AOLConv, AOLDense
from lipjax.layers.base import POWER_ITERATION, LipschitzLayer
from lipjax.layers.centering import BatchCentering, LayerCentering
from lipjax.layers.constrained import ConstrainedConv, ConstrainedDense
from lipjax.layers.containers import Repeat, Sequential
from lipjax.layers.convex_potential import ConvexPotentialConv, ConvexPotentialDense
from lipjax.layers.flow import ConvexPotentialFlow
from lipjax.layers.kinds import KINDS, ExportKind, Record, register
from lipjax.layers.orthogonal import CayleyConv, CayleyDense, SOCConv, SOCDense
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
    "AOLConv",
    "AOLDense",
    "Activation",
    "BatchCentering",
    "CayleyConv",
    "CayleyDense",
    "ChannelPad",
    "ChannelTruncate",
    "ConstrainedConv",
    "ConstrainedDense",
    "ConvexPotentialConv",
    "ConvexPotentialFlow",
    "ConvexPotentialDense",
    "ExportKind",
    "Flatten",
    "FrobeniusDense",
    "FullSort",
    "GroupSort",
    "GroupSort2",
    "Householder",
    "LayerCentering",
    "InvertibleDownsample",
    "LipschitzLayer",
    "MaxMin",
    "Normalize",
    "NormalizedDense",
    "Record",
    "Repeat",
    "ScaledAvgPool",
    "ScaledL2NormPool",
    "SOCConv",
    "SOCDense",
    "SLLConv",
    "SLLDense",
    "Sequential",
    "SpectralConv",
    "SpectralDense",
    "register",
]
