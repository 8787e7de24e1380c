"""Architectures: CPL-S/M/L/XL (Meunier et al., 2022, Table 1), small MNIST nets, builders.

Every model is a :class:`lipjax.layers.Sequential` of lipjax layers, so it can be
exported with a certified constant. Inputs are NHWC images with pixels in
``[0, 1]``; the input standardisation is the model's first layer, so its
``1 / min(std)`` factor is part of the certified constant and certificates are
radii in pixel space. Identical stacked blocks use :class:`lipjax.layers.Repeat`
(``nn.scan``), so compile time does not grow with depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax

from lipjax import layers as L
from lipjax.data.registry import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, MNIST_MEAN, MNIST_STD  # noqa: F401


@dataclass(frozen=True)
class CPLSize:
    """One column of Table 1 of Meunier et al. (2022)."""

    conv_layers: int
    channels: int
    linear_layers: int
    features: int


CPL_SIZES: dict[str, CPLSize] = {
    "S": CPLSize(conv_layers=20, channels=45, linear_layers=7, features=2048),
    "M": CPLSize(conv_layers=30, channels=60, linear_layers=10, features=2048),
    "L": CPLSize(conv_layers=90, channels=60, linear_layers=15, features=4096),
    "XL": CPLSize(conv_layers=120, channels=70, linear_layers=15, features=4096),
}


def make_head(head: str, num_classes: int) -> nn.Module:
    """``"lln"``: normalised last layer; ``"truncate"``: keep the first ``num_classes`` features."""
    if head == "lln":
        return L.NormalizedDense(num_classes)
    if head == "truncate":
        return L.ChannelTruncate(num_classes)
    raise ValueError(f"head must be 'lln' or 'truncate'; got {head!r}")


def _stack(layer: nn.Module, depth: int, remat: bool = False, unroll: int = 1) -> list[nn.Module]:
    if depth < 0:
        raise ValueError(f"layer count must be >= 0; got {depth}")
    return [L.Repeat(layer, depth, remat=remat, unroll=unroll)] if depth else []


DENSE_UNROLL = 8
"""Dense CPL stacks of at most this many layers run unrolled (:class:`lipjax.layers.Repeat`'s
``unroll``): their wide weights then stay in place instead of being sliced out of the stacked
parameters each iteration; deeper stacks keep one layer per iteration and a flat compile time."""


CPU_CONV_UNROLL = 4
"""Conv CPL stacks run this many layers per loop iteration on the CPU backend (one elsewhere):
XLA's CPU backend then schedules the unrolled layers' chunked Winograd convolutions together.
CPL-S train step, one run interleaved with the official code: 0.94x -> 1.00x its speed with
jax 0.10.2, 1.09x -> 1.15x with jax 0.12, for about 2 s more compile time; on an H100 CPL-S
gained 4% and CPL-M lost 4%, so other backends keep one layer per iteration
(benchmarks/README.md). With the batch chunks written out (:func:`lipjax.ops.map_batch_chunks`)
the gain shrank to within the spread (1.16x against 1.13x with one layer per iteration, jax
0.10.2, one interleaved run). The parameters stay stacked either way."""


def _conv_unroll() -> int:
    return CPU_CONV_UNROLL if jax.default_backend() == "cpu" else 1


def _normalize(mean, std) -> list[nn.Module]:
    if mean is None and std is None:
        return []
    if mean is None or std is None:
        raise ValueError("give both mean and std, or neither")
    return [L.Normalize(tuple(mean), tuple(std))]


def cpl_network(
    conv_layers: int,
    channels: int,
    linear_layers: int,
    features: int,
    num_classes: int = 10,
    head: str = "lln",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pool: int = 4,
    kernel_size: int = 3,
    activation: str = "relu",
    power_iters: int = 1,
    conv_algorithm: str = "auto",
    remat: bool = False,
    conv_layer: str = "cpl",
    step: float | None = None,
) -> L.Sequential:
    """The CPL architecture of Meunier et al. (2022), §5.1.

    normalise -> zero channel padding to ``channels`` -> ``conv_layers`` conv CPLs
    (kernel ``kernel_size``, stride 1, zero padding, at input resolution) ->
    1-Lipschitz ``pool x pool`` average pool -> flatten -> ``linear_layers`` dense
    CPLs of ``features`` hidden units -> LLN or truncation head. ``conv_algorithm``:
    how training computes the convolutions (:data:`lipjax.ops.conv.ALGORITHMS`);
    ``remat``: recompute the conv stack's activations in the backward pass
    (:class:`lipjax.layers.Repeat`), for very deep networks. ``conv_layer="spectral"``
    replaces each conv CPL by a spectrally normalised convolution followed by MaxMin
    (a same-shape baseline; the dense part stays CPL). ``step``: a fixed step ``h`` in
    every CPL (the relaxed network of appendix D.2, certified with its real constant).
    """
    kernel = (kernel_size, kernel_size)
    if conv_layer == "cpl":
        conv = L.ConvexPotentialConv(
            channels,
            kernel,
            activation=activation,
            power_iters=power_iters,
            algorithm=conv_algorithm,
            step=step,
        )
    elif conv_layer == "spectral":
        conv = L.Sequential(
            [L.SpectralConv(channels, kernel, power_iters=power_iters, algorithm=conv_algorithm), L.MaxMin()]
        )
    else:
        raise ValueError(f"conv_layer must be 'cpl' or 'spectral'; got {conv_layer!r}")
    linear = (
        _stack(
            L.ConvexPotentialDense(features, activation=activation, power_iters=power_iters, step=step),
            linear_layers,
            unroll=linear_layers if linear_layers <= DENSE_UNROLL else 1,
        )
        if linear_layers
        else []
    )
    body = [
        *_normalize(mean, std),
        L.ChannelPad(channels),
        *_stack(conv, conv_layers, remat, unroll=_conv_unroll()),
        *([L.ScaledAvgPool(pool)] if pool > 1 else []),
        L.Flatten(),
        *linear,
    ]
    return L.Sequential([*body, make_head(head, num_classes)])


def cpl(
    size: str = "S",
    num_classes: int = 10,
    head: str = "lln",
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    **kwargs,
) -> L.Sequential:
    """CPL-S, CPL-M, CPL-L or CPL-XL (Table 1) for 32x32x3 images.

    Example::

        model = lipjax.models.cpl("S", num_classes=100, head="lln",
                                  mean=CIFAR100_MEAN, std=CIFAR100_STD)
    """
    if size not in CPL_SIZES:
        raise ValueError(f"size must be one of {sorted(CPL_SIZES)}; got {size!r}")
    s = CPL_SIZES[size]
    return cpl_network(
        s.conv_layers, s.channels, s.linear_layers, s.features, num_classes, head, mean, std, **kwargs
    )


def cpl_mnist_dense(
    num_classes: int = 10,
    depth: int = 4,
    features: int = 1024,
    head: str = "lln",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    activation: str = "relu",
    power_iters: int = 1,
) -> L.Sequential:
    """Flatten -> ``depth`` dense CPLs of ``features`` hidden units -> head (for 28x28x1)."""
    return L.Sequential(
        [
            *_normalize(mean, std),
            L.Flatten(),
            *_stack(L.ConvexPotentialDense(features, activation=activation, power_iters=power_iters), depth),
            make_head(head, num_classes),
        ]
    )


def cpl_mnist_conv(
    num_classes: int = 10,
    conv_layers: int = 4,
    channels: int = 16,
    linear_layers: int = 2,
    features: int = 1024,
    head: str = "lln",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pool: int = 2,
    **kwargs,
) -> L.Sequential:
    """A small conv CPL network for 28x28x1 images (the CPL recipe at MNIST scale)."""
    return cpl_network(
        conv_layers, channels, linear_layers, features, num_classes, head, mean, std, pool=pool, **kwargs
    )


def deep_cpl(depth: int = 1000, channels: int = 30, num_classes: int = 10, **kwargs) -> L.Sequential:
    """The very deep network of appendix D.1: ``depth`` conv CPLs of ``channels`` maps."""
    return cpl_network(depth, channels, 0, 0, num_classes, head="truncate", **kwargs)


def deel_lip_mnist(
    num_classes: int = 10,
    channels: Sequence[int] = (16, 32),
    features: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> L.Sequential:
    """deel-lip's 10-class MNIST demo: two [SpectralConv 3x3 + GroupSort2 + scaled l2-norm pool 2]
    blocks, SpectralDense + GroupSort2, and a row-normalised head (deel-lip's FrobeniusDense with
    disjoint neurons is LLN: each logit 1-Lipschitz)."""
    blocks: list[nn.Module] = list(_normalize(mean, std))
    for width in channels:
        blocks += [L.SpectralConv(width), L.GroupSort2(), L.ScaledL2NormPool(2)]
    blocks += [L.Flatten(), L.SpectralDense(features), L.GroupSort2()]
    return L.Sequential([*blocks, make_head("lln", num_classes)])


def deel_lip_mnist_binary(hidden: Sequence[int] = (256, 128, 64)) -> L.Sequential:
    """deel-lip's MNIST 0-vs-8 HKR demo: SpectralDense + GroupSort2 blocks, FrobeniusDense(1) head."""
    blocks: list[nn.Module] = [L.Flatten()]
    for width in hidden:
        blocks += [L.SpectralDense(width), L.GroupSort2()]
    return L.Sequential([*blocks, L.FrobeniusDense(1)])


# --- the architecture of "1-Lipschitz layers compared" (Prach et al., 2024) ----------------

LIPCONVNET_BASE_WIDTHS: dict[str, int] = {"XS": 16, "S": 32, "M": 64, "L": 128}
"""Channels of the first block of a 32x32 network; each block doubles them."""


def _conv_cpl(channels, k):
    return L.ConvexPotentialConv(channels, (k, k))


def _conv_sll(channels, k):
    return L.SLLConv(channels, (k, k))


def _conv_aol(channels, k):
    return L.AOLConv(channels, (k, k))


def _conv_cayley(channels, k):
    return L.CayleyConv(channels, (k, k))


def _conv_soc(channels, k):
    return L.SOCConv(channels, (k, k))


def _conv_spectral(channels, k):
    return L.SpectralConv(channels, (k, k))


LIPCONVNET_LAYERS = {
    "cpl": _conv_cpl,
    "sll": _conv_sll,
    "aol": _conv_aol,
    "cayley": _conv_cayley,
    "soc": _conv_soc,
    "spectral": _conv_spectral,
}
"""Layer type -> ``(channels, kernel_size) -> channel-preserving 1-Lipschitz conv layer``."""


def lipconvnet(
    layer: str = "cpl",
    size: str = "XS",
    num_classes: int = 10,
    input_resolution: int = 32,
    layers_per_block: int = 5,
    kernel_size: int = 3,
    head: str = "truncate",
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
) -> L.Sequential:
    """The LipConvNet-style network of Prach et al. (2024), with any 1-Lipschitz conv layer.

    The same network for every layer type, so layer types compare at equal shape:
    normalise -> zero channel padding to ``w`` -> a 1x1 layer + MaxMin -> ``log2(resolution)``
    blocks, block ``i`` holding ``layers_per_block`` x [layer on ``w 2^i`` channels, MaxMin]
    (one ``Repeat``, compiled once) then keeping the first half of the channels and a
    2x2 pixel unshuffle (so the channels double and the resolution halves) -> a 1x1
    layer on the ``1 x 1 x W`` map -> flatten -> head. The last block (on 2x2 images)
    uses 1x1 kernels. ``W = 32 x {16, 32, 64, 128}`` for XS, S, M, L and
    ``w = W / resolution``. Every piece is 1-Lipschitz (projections, isometries, the layers).

    Args:
      layer: one of :data:`LIPCONVNET_LAYERS` (``cpl``, ``sll``, ``aol``, ``cayley``,
        ``soc``, ``spectral``).
      size: ``XS``, ``S``, ``M`` or ``L``.
      num_classes: outputs.
      input_resolution: side of the square input (a power of two, at least 4).
      layers_per_block: layers per block.
      kernel_size: kernel of the blocks' layers (odd for Cayley / SOC).
      head: ``"truncate"`` (first ``num_classes`` features, as in the paper) or ``"lln"``.
      mean, std: input standardisation (part of the certified constant), or both None.

    References:
      Prach, Brau, Buttazzo, Lampert, 1-Lipschitz layers compared: memory, speed
      and certifiable robustness, CVPR 2024 (architecture as in their public code).
    """
    if layer not in LIPCONVNET_LAYERS:
        raise ValueError(f"layer must be one of {sorted(LIPCONVNET_LAYERS)}; got {layer!r}")
    if size not in LIPCONVNET_BASE_WIDTHS:
        raise ValueError(f"size must be one of {sorted(LIPCONVNET_BASE_WIDTHS)}; got {size!r}")
    if (
        not isinstance(input_resolution, int)
        or input_resolution < 4
        or input_resolution & (input_resolution - 1)
    ):
        raise ValueError(f"input_resolution must be a power of two >= 4; got {input_resolution!r}")
    if not isinstance(layers_per_block, int) or layers_per_block < 1:
        raise ValueError(f"layers_per_block must be a positive int; got {layers_per_block!r}")
    make = LIPCONVNET_LAYERS[layer]
    blocks = input_resolution.bit_length() - 1
    final_width = LIPCONVNET_BASE_WIDTHS[size] * 32
    width = max(final_width // input_resolution, 1)
    body: list[nn.Module] = [*_normalize(mean, std), L.ChannelPad(width), make(width, 1), L.MaxMin()]
    for i in range(blocks):
        channels = width * 2**i
        k = kernel_size if i < blocks - 1 else 1
        body += [
            L.Repeat(L.Sequential([make(channels, k), L.MaxMin()]), layers_per_block),
            L.ChannelTruncate(channels // 2),
            L.InvertibleDownsample(2),
        ]
    body += [make(width * 2**blocks, 1), L.Flatten()]
    return L.Sequential([*body, make_head(head, num_classes)])
