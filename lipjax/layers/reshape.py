"""1-Lipschitz shape changes and input normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lipjax import ops
from lipjax.layers.base import Record, check_input, check_positive


class ChannelPad(nn.Module):
    """Zero-pads the last axis up to ``channels`` (Meunier et al. §4.2); an isometry."""

    channels: int

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "ChannelPad")
        return ops.channel_pad(x, self.channels)

    def export_record(self, params, state, input_shape) -> Record:
        return "channel_pad", {"channels": self.channels}, {}


class ChannelTruncate(nn.Module):
    """Keeps the first ``channels`` features (a truncation head); 1-Lipschitz."""

    channels: int

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 4), "ChannelTruncate")
        return ops.channel_truncate(x, self.channels)

    def export_record(self, params, state, input_shape) -> Record:
        return "channel_truncate", {"channels": self.channels}, {}


class Flatten(nn.Module):
    """(N, H, W, C) -> (N, H W C); an isometry."""

    def __call__(self, x, update_stats: bool = False):
        check_input(x, (2, 3, 4), "Flatten")
        return ops.flatten(x)

    def export_record(self, params, state, input_shape) -> Record:
        return "flatten", {}, {}


class ScaledAvgPool(nn.Module):
    """Non-overlapping ``window x window`` average pool times ``window``; 1-Lipschitz."""

    window: int = 4

    def __post_init__(self):
        check_positive("window", self.window, "ScaledAvgPool")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "ScaledAvgPool")
        return ops.scaled_avg_pool(x, self.window)

    def export_record(self, params, state, input_shape) -> Record:
        return "scaled_avg_pool", {"window": self.window}, {}


class ScaledL2NormPool(nn.Module):
    """Non-overlapping L2-norm pooling, ``sqrt(sum x^2)`` per window; 1-Lipschitz."""

    window: int = 2

    def __post_init__(self):
        check_positive("window", self.window, "ScaledL2NormPool")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "ScaledL2NormPool")
        return ops.scaled_l2_norm_pool(x, self.window)

    def export_record(self, params, state, input_shape) -> Record:
        return "scaled_l2_norm_pool", {"window": self.window}, {}


class InvertibleDownsample(nn.Module):
    """Pixel unshuffle (space-to-depth) by ``factor``; an isometry."""

    factor: int = 2

    def __post_init__(self):
        check_positive("factor", self.factor, "InvertibleDownsample")
        super().__post_init__()

    def __call__(self, x, update_stats: bool = False):
        check_input(x, 4, "InvertibleDownsample")
        return ops.pixel_unshuffle(x, self.factor)

    def export_record(self, params, state, input_shape) -> Record:
        return "pixel_unshuffle", {"factor": self.factor}, {}


class Normalize(nn.Module):
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

    def export_record(self, params, state, input_shape) -> Record:
        arrays = {
            "mean": np.asarray(self.mean, np.float32),
            "std": np.asarray(self.std, np.float32),
        }
        return "normalize", {}, arrays
