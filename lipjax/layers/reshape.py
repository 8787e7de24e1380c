"""1-Lipschitz shape changes and input normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.base import LipschitzLayer, check_input, check_positive
from lipjax.layers.kinds import ExportKind, Record, exact_rounding, exactly_one, one_with_rounding, register
from lipjax.ops import rounding as fe
from lipjax.ops.spectral_bounds import with_rounding_slack


def _normalize_bound(arrays, config, input_shape):
    std = np.asarray(arrays["std"], np.float64)
    if np.any(std <= 0) or not np.all(np.isfinite(std)):
        raise ValueError("normalize layer has a non-positive or non-finite std")
    return with_rounding_slack(1.0 / float(std.min()))


def _broadcast_norm(array, input_shape) -> float:
    """``||a||_2`` of ``a`` broadcast over an input of ``input_shape``: each entry repeats
    ``prod(input_shape) / a.size`` times."""
    a = np.asarray(array, np.float64)
    return float(np.linalg.norm(a)) * float(np.sqrt(np.prod(input_shape) / max(a.size, 1)))


def _normalize_rounding(arrays, config, input_shape, input_norm, u):
    """``(x - m) / s``: one subtraction, one division per entry.

    ``||x - m|| <= N + ||m||_bcast``, error ``u (N + ||m||)``; dividing by ``s`` (exact
    stored numbers): ``delta = (u (N + ||m||) + u (1 + u)(N + ||m||)) / min s``,
    ``output_norm = (N + ||m||) / min s`` (:func:`lipjax.ops.rounding.scale`).
    """
    std = np.abs(np.asarray(arrays["std"], np.float64))
    centred = fe.translate(fe.start(input_norm), _broadcast_norm(arrays["mean"], input_shape), u)
    return fe.scale(centred, 1.0 / float(std.min()), u)


def _avg_pool_rounding(arrays, config, input_shape, input_norm, u):
    """Sum of ``k^2`` entries then one division by ``k``: ``delta = gamma_{k^2} N``.

    Per output ``|err| <= gamma_{k^2} sum_block |x| / k <= gamma_{k^2} ||x_block||``
    (Cauchy-Schwarz over the ``k^2`` entries); blocks are disjoint. ``output_norm = N``.
    """
    k = int(config["window"])
    norm = fe.check_input_norm(input_norm)
    return fe.Tracked(norm, fe.gamma(k * k, u) * norm)


def _l2_pool_rounding(arrays, config, input_shape, input_norm, u):
    """``sqrt(sum_block x^2 + c1) - c2`` with the real constants ``c1 = 1e-12``, ``c2 = 1e-6``.

    The sum has ``k^2 + 1`` non-negative terms (squares, and ``c1`` rounded to the format):
    relative error ``gamma_{k^2+1}``; ``sqrt`` (correctly rounded) halves it and adds ``u``:
    ``r~ = r (1 + eta)``, ``|eta| <= gamma_{k^2+2}``; subtracting the rounded ``c2``:
    ``|err| <= gamma_{k^2+3} r + 3 u c2``. Over the ``P`` outputs ``||r|| <= N + c2 sqrt(P)``:
    ``delta = gamma_{k^2+3} (N + 4 c2 sqrt(P))``, ``output_norm = N + 2 c2 sqrt(P)``.
    """
    k = int(config["window"])
    norm = fe.check_input_norm(input_norm)
    offset = 1e-6 * float(np.sqrt(np.prod(input_shape[:2]) / (k * k) * input_shape[2]))
    return fe.Tracked(norm + 2 * offset, fe.gamma(k * k + 3, u) * (norm + 4 * offset))


CHANNEL_PAD = register(
    ExportKind(
        "channel_pad",
        apply=lambda x, a, c: ops.channel_pad(x, c["channels"]),
        lipschitz=exactly_one,
        rounding=exact_rounding,
        config=("channels",),
    )
)
CHANNEL_TRUNCATE = register(
    ExportKind(
        "channel_truncate",
        apply=lambda x, a, c: ops.channel_truncate(x, c["channels"]),
        lipschitz=exactly_one,
        rounding=exact_rounding,
        config=("channels",),
    )
)
FLATTEN = register(
    ExportKind(
        "flatten", apply=lambda x, a, c: ops.flatten(x), lipschitz=exactly_one, rounding=exact_rounding
    )
)
PIXEL_UNSHUFFLE = register(
    ExportKind(
        "pixel_unshuffle",
        apply=lambda x, a, c: ops.pixel_unshuffle(x, c["factor"]),
        lipschitz=exactly_one,
        rounding=exact_rounding,
        config=("factor",),
    )
)
SCALED_AVG_POOL = register(
    ExportKind(
        "scaled_avg_pool",
        apply=lambda x, a, c: ops.scaled_avg_pool(x, c["window"]),
        lipschitz=one_with_rounding,
        rounding=_avg_pool_rounding,
        config=("window",),
    )
)
SCALED_L2_NORM_POOL = register(
    ExportKind(
        "scaled_l2_norm_pool",
        apply=lambda x, a, c: ops.scaled_l2_norm_pool(x, c["window"]),
        lipschitz=one_with_rounding,
        rounding=_l2_pool_rounding,
        config=("window",),
    )
)
NORMALIZE = register(
    ExportKind(
        "normalize",
        apply=lambda x, a, c: (x - a["mean"]) / a["std"],
        lipschitz=_normalize_bound,
        arrays=("mean", "std"),
        rounding=_normalize_rounding,
    )
)


class ChannelPad(LipschitzLayer):
    """Zero-pads the last axis up to ``channels`` (Meunier et al. §4.2); an isometry."""

    channels: int

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "ChannelPad")
        return ops.channel_pad(x, self.channels)

    def export_record(self, params, input_shape) -> Record:
        return CHANNEL_PAD.record({"channels": self.channels})


class ChannelTruncate(LipschitzLayer):
    """Keeps the first ``channels`` features (a truncation head); 1-Lipschitz."""

    channels: int

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "ChannelTruncate")
        return ops.channel_truncate(x, self.channels)

    def export_record(self, params, input_shape) -> Record:
        return CHANNEL_TRUNCATE.record({"channels": self.channels})


class Flatten(LipschitzLayer):
    """(N, H, W, C) -> (N, H W C); an isometry."""

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 3, 4), "Flatten")
        return ops.flatten(x)

    def export_record(self, params, input_shape) -> Record:
        return FLATTEN.record()


class ScaledAvgPool(LipschitzLayer):
    """Non-overlapping ``window x window`` average pool times ``window``; 1-Lipschitz."""

    window: int = 4

    def __post_init__(self):
        check_positive("window", self.window, "ScaledAvgPool")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "ScaledAvgPool")
        return ops.scaled_avg_pool(x, self.window)

    def export_record(self, params, input_shape) -> Record:
        return SCALED_AVG_POOL.record({"window": self.window})


class ScaledL2NormPool(LipschitzLayer):
    """Non-overlapping L2-norm pooling, ``sqrt(sum x^2)`` per window; 1-Lipschitz."""

    window: int = 2

    def __post_init__(self):
        check_positive("window", self.window, "ScaledL2NormPool")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "ScaledL2NormPool")
        return ops.scaled_l2_norm_pool(x, self.window)

    def export_record(self, params, input_shape) -> Record:
        return SCALED_L2_NORM_POOL.record({"window": self.window})


class InvertibleDownsample(LipschitzLayer):
    """Pixel unshuffle (space-to-depth) by ``factor``; an isometry."""

    factor: int = 2

    def __post_init__(self):
        check_positive("factor", self.factor, "InvertibleDownsample")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "InvertibleDownsample")
        return ops.pixel_unshuffle(x, self.factor)

    def export_record(self, params, input_shape) -> Record:
        return PIXEL_UNSHUFFLE.record({"factor": self.factor})


class Normalize(LipschitzLayer):
    """Input standardisation ``(x - mean) / std`` per channel.

    Its Lipschitz constant ``1 / min(std)`` enters the network's certified constant,
    so certificates stay expressed in the raw input space (e.g. pixels in [0, 1]).
    """

    mean: Sequence[float]
    std: Sequence[float]

    def __post_init__(self):
        if len(tuple(self.mean)) != len(tuple(self.std)):
            raise ValueError(f"Normalize: mean has {len(self.mean)} entries but std has {len(self.std)}")
        if min(self.std) <= 0:
            raise ValueError(f"Normalize: std must be positive; got {tuple(self.std)}")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "Normalize", features=len(tuple(self.mean)))
        mean = jnp.asarray(self.mean, x.dtype)
        std = jnp.asarray(self.std, x.dtype)
        return (x - mean) / std

    def export_record(self, params, input_shape) -> Record:
        return NORMALIZE.record(mean=np.asarray(self.mean), std=np.asarray(self.std))
