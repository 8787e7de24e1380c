"""The convex potential flow block (Meunier et al., 2022, Sections 3-4).

The flow ``x' = -grad f_t(x) + A_t x`` (convex ``f_t``, skew-symmetric ``A_t``) is
1-Lipschitz (Corollary 1) and is discretised in two steps per time step:

1. a gradient step ``x_{t+1/2} = x_t - h_t grad f_t(x_t)`` with ``h_t <= 2 / L_t``,
   the convex potential layer ``x - (2 / ||W||^2) W^T sigma(W x + b)``
   (Proposition 3: 1-Lipschitz);
2. a norm-preserving skew step: the midpoint rule, i.e. the Cayley transform
   ``(I - A_t/2)^{-1}(I + A_t/2)``, or the exact flow ``exp(A_t / 2)`` (SOC).
   The skew layers learn ``A_t`` directly: ``cayley(V - V^T)`` is the midpoint
   step of ``A_t = -2 (V - V^T)`` and ``exp(V - V^T)`` the exact step of
   ``A_t = 2 (V - V^T)``, so every skew-symmetric ``A_t`` is reachable.

:func:`ConvexPotentialFlow` returns ``depth`` such time steps, each with its
own weights, as a :class:`lipjax.layers.Repeat` of a two-layer
:class:`lipjax.layers.Sequential`: the same ``nn.scan``-over-depth path as the
CPL stacks (compile time independent of ``depth``), exported as one scanned
``chain`` layer whose certificate is the product of its two steps' bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from lipjax.layers.containers import Repeat, Sequential
from lipjax.layers.convex_potential import ConvexPotentialConv, ConvexPotentialDense
from lipjax.layers.orthogonal import CayleyConv, CayleyDense, SOCConv, SOCDense

SKEW_STEPS = ("cayley", "exp")


def ConvexPotentialFlow(  # noqa: N802 - a layer constructor, named like one
    features: int,
    depth: int = 1,
    skew: str = "cayley",
    conv: bool = True,
    kernel_size: Sequence[int] = (3, 3),
    padding: str = "CIRCULAR",
    activation: str = "relu",
    power_iters: int = 1,
    terms: int = 10,
) -> Repeat:
    """``depth`` steps of the discretised convex potential flow; shape-preserving, 1-Lipschitz.

    Args:
      features: width of each convex potential (rows of ``W`` / output channels of its conv).
      depth: number of time steps ``T``.
      skew: ``"cayley"`` (midpoint rule) or ``"exp"`` (exact flow, truncated series).
      conv: convolutional steps on NHWC images (else dense steps on vectors).
      kernel_size: odd kernel size of the convolutions.
      padding: of the convolutions; ``"CIRCULAR"`` (needed by the Cayley convolution)
        or, with ``skew="exp"``, ``"SAME"``.
      activation: the potential's monotone 1-Lipschitz activation.
      power_iters: power-iteration steps per update of the potential's ``||W||``.
      terms: Taylor terms of the exponential (``skew="exp"``).

    Returns:
      a :class:`Repeat` module, called as ``apply(variables, x, update_stats=...)``.

    Raises:
      ValueError: naming a bad ``skew``, ``depth``, ``padding`` or layer hyperparameter.
    """
    if skew not in SKEW_STEPS:
        raise ValueError(f"ConvexPotentialFlow: skew must be one of {SKEW_STEPS}; got {skew!r}")
    if conv:
        potential = ConvexPotentialConv(
            features, kernel_size, padding=padding, activation=activation, power_iters=power_iters
        )
        if skew == "cayley":
            step = CayleyConv(kernel_size=kernel_size, padding=padding)
        else:
            step = SOCConv(kernel_size=kernel_size, padding=padding, terms=terms)
    else:
        potential = ConvexPotentialDense(features, activation=activation, power_iters=power_iters)
        step = CayleyDense(None) if skew == "cayley" else SOCDense(None, terms=terms)
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"ConvexPotentialFlow: depth must be a positive int; got {depth!r}")
    return Repeat(Sequential([potential, step]), depth)
