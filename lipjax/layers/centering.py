"""Centering layers (in place of batch normalisation, whose division is not 1-Lipschitz).

* :class:`LayerCentering`: ``x - mean(x)`` per example, an orthogonal projection
  (constant exactly 1).
* :class:`BatchCentering`: ``x - mu``; while training (``update_stats=True``) ``mu`` is
  the batch mean and the running mean in the :data:`POWER_ITERATION` statistics
  collection is updated; in evaluation and in the export ``mu`` is the running
  mean, so the exported map is a translation (constant exactly 1).

Maths and proofs: :mod:`lipjax.ops.centering`.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lipjax.layers.base import POWER_ITERATION, LipschitzLayer, check_input
from lipjax.layers.kinds import ExportKind, Record, register
from lipjax.ops import centering
from lipjax.ops import rounding as fe


def _layer_centering_rounding(arrays, config, input_shape, input_norm, u):
    """``x - mean(x)`` over groups of ``m`` entries: ``delta = gamma_{m+2} N``, ``output_norm = N``.

    A group's mean (``m - 1`` additions, a division or a product by a rounded ``1/m``) errs by
    at most ``gamma_{m+1} sum |x| / m``; broadcast over the ``m`` entries its norm is at most
    ``gamma_{m+1} ||x_group||`` (Cauchy-Schwarz); the subtraction adds ``u (1 + gamma_{m+1}) N``.
    """
    shape = (1, *input_shape)
    group = int(np.prod([shape[a] for a in centering._feature_axes(np.empty(shape), config["axes"], "")]))
    norm = fe.check_input_norm(input_norm)
    return fe.Tracked(norm, fe.gamma(group + 2, u) * norm)


def _batch_centering_rounding(arrays, config, input_shape, input_norm, u):
    """``x - mu``: one subtraction per entry, ``delta = u (N + ||mu||_bcast)``, ``output_norm =
    N + ||mu||_bcast`` (:func:`lipjax.ops.rounding.translate`)."""
    mean = np.asarray(arrays["mean"], np.float64)
    offset = float(np.linalg.norm(mean)) * float(np.sqrt(np.prod(input_shape) / max(mean.size, 1)))
    return fe.translate(fe.start(input_norm), offset, u)


LAYER_CENTERING = register(
    ExportKind(
        "layer_centering",
        apply=lambda x, a, c: centering.layer_centering(x, c["axes"]),
        lipschitz=lambda a, c, shape: centering.centering_lipschitz_bound(),
        config=("axes",),
        rounding=_layer_centering_rounding,
    )
)

BATCH_CENTERING = register(
    ExportKind(
        "batch_centering",
        apply=lambda x, a, c: centering.batch_centering(x, a["mean"]),
        lipschitz=lambda a, c, shape: centering.centering_lipschitz_bound(),
        arrays=("mean",),
        rounding=_batch_centering_rounding,
    )
)


def _default_axes(ndim: int) -> tuple[int, ...]:
    # dense inputs: over the features; images: over the pixels of each channel
    return (-1,) if ndim == 2 else tuple(range(1, ndim - 1))


class LayerCentering(LipschitzLayer):
    """``y = x - mean(x over axes)`` per example; Lipschitz constant 1 (a projection).

    Attributes:
      axes: averaged axes; ``None``: the features of a dense input, the spatial
        axes (per channel) of an image.
    """

    axes: Sequence[int] | None = None

    def _axes(self, ndim: int) -> list[int]:
        axes = _default_axes(ndim) if self.axes is None else tuple(self.axes)
        return [a % ndim if a >= -ndim else a for a in axes]

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 3, 4), "LayerCentering")
        return centering.layer_centering(x, self._axes(x.ndim))

    def export_record(self, params, input_shape) -> Record:
        return LAYER_CENTERING.record({"axes": [int(a) for a in self._axes(len(input_shape) + 1)]})


class BatchCentering(LipschitzLayer):
    """``y = x - mu`` per channel: batch mean in training, running mean in evaluation and export.

    Attributes:
      momentum: of the running mean, ``mu <- momentum mu + (1 - momentum) batch_mean``.
    """

    momentum: float = 0.9
    uses_statistics = True

    def __post_init__(self):
        if not (isinstance(self.momentum, int | float) and 0.0 <= self.momentum <= 1.0):
            raise ValueError(f"BatchCentering: momentum must be in [0, 1]; got {self.momentum!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "BatchCentering")
        if not self.is_initializing() and not self.has_variable(POWER_ITERATION, "mean"):
            raise ValueError(
                f"BatchCentering '{self.name}': the variables lack the '{POWER_ITERATION}' "
                "collection (its running mean); pass all variables returned by init()"
            )
        running = self.variable(POWER_ITERATION, "mean", lambda: jnp.zeros(x.shape[-1:], x.dtype))
        if not update_stats:
            return centering.batch_centering(x, running.value.astype(x.dtype))
        mean = centering.batch_mean(x, tuple(range(x.ndim - 1)))
        if not self.is_initializing():
            running.value = centering.update_running_mean(running.value, mean, self.momentum)
        return centering.batch_centering(x, mean)

    def export_record(self, params, input_shape, statistics=None) -> Record:
        if not statistics or "mean" not in statistics:
            raise ValueError(
                f"BatchCentering: exporting needs its running mean (the '{POWER_ITERATION}' collection)"
            )
        return BATCH_CENTERING.record(mean=np.asarray(statistics["mean"]))
