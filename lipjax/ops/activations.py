"""Monotone, 1-Lipschitz scalar activations, by name.

The convex potential layer needs an activation that is non-decreasing with
slope in [0, 1] (the derivative of a convex, 1-smooth potential). Activations
are referred to by name so an exported model describes them without code.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the monotone 1-Lipschitz activation called ``name``.

    Raises:
      ValueError: if ``name`` is not one of :data:`ACTIVATIONS`.
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}: choose one of {sorted(ACTIVATIONS)} "
            "(each is non-decreasing with slope in [0, 1], as the convex potential layer needs)"
        ) from None
