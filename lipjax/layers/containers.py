"""Sequential composition and depth-independent stacks (``nn.scan``)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from lipjax.layers.base import POWER_ITERATION, LipschitzLayer


class Sequential(nn.Module):
    """Applies ``layers`` in order, passing ``update_stats`` to each.

    Every lipjax layer takes ``update_stats``; other Flax modules are called on
    ``x`` alone (such a network runs but cannot be exported with a certificate).
    The export walks ``layers`` in order.
    """

    layers: Sequence[nn.Module]

    def __call__(self, x, update_stats: bool = False):
        for layer in self.layers:
            if _is_lipjax_layer(layer):
                x = layer(x, update_stats=update_stats)
            else:
                x = layer(x)
        return x


def _is_lipjax_layer(layer) -> bool:
    return isinstance(layer, Sequential | Repeat | LipschitzLayer)


class Repeat(nn.Module):
    """``depth`` copies of ``layer`` (same hyperparameters, own weights), built with ``nn.scan``.

    The compiled graph holds one copy of the layer whatever the depth, so compile
    time does not grow with depth (a 1000-layer CPL network compiles in seconds).
    Parameters and power-iteration vectors get a leading ``depth`` axis.

    ``remat=True`` recomputes each layer's activations in the backward pass instead
    of storing them (``nn.remat`` inside the scan): a train step then keeps one
    input per layer instead of every intermediate, so memory grows by one
    activation per layer (the price is one more forward pass).

    ``unroll`` layers run per loop iteration (``depth`` unrolls fully; the parameters stay
    stacked either way). Unrolling a few wide dense layers lets XLA keep their weights and
    gradients in place instead of slicing them out of, and back into, the stacked arrays each
    iteration: 7 dense CPLs of 2048 units (CPL-S's dense part) trained about 1.7x faster on
    the development CPU fully unrolled (benchmarks/README.md), for a compile time that grows with ``unroll``.
    """

    layer: nn.Module
    depth: int
    remat: bool = False
    unroll: int = 1

    def __post_init__(self):
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"Repeat: depth must be a positive int; got {self.depth!r}")
        if not isinstance(self.unroll, int) or self.unroll < 1:
            raise ValueError(f"Repeat: unroll must be a positive int; got {self.unroll!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        def body(layer, carry, _):
            return layer(carry, update_stats=update_stats), None

        scan = nn.scan(
            nn.remat(body, prevent_cse=False) if self.remat else body,
            variable_axes={"params": 0, POWER_ITERATION: 0},
            split_rngs={"params": True},
            length=self.depth,
            unroll=min(self.unroll, self.depth),
        )
        x, _ = scan(self.layer, x, None)
        return x
