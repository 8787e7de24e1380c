"""Gradient-norm-preserving activations: GroupSort, FullSort, Householder.

Each is 1-Lipschitz in l2 and its Jacobian is a.e. orthogonal (a permutation or
a reflection), so it preserves gradient norms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def group_sort(x: jax.Array, group_size: int = 2) -> jax.Array:
    """Sorts consecutive groups of ``group_size`` features on the last axis (ascending).

    ``group_size = 2`` is MaxMin / GroupSort2; ``group_size = n`` is FullSort.

    References:
      Anil, Lucas, Grosse, Sorting out Lipschitz function approximation, ICML 2019.
    """
    n = x.shape[-1]
    if group_size < 1 or n % group_size:
        raise ValueError(f"group_size must divide the feature count {n}; got {group_size}")
    grouped = x.reshape(*x.shape[:-1], n // group_size, group_size)
    return jnp.sort(grouped, axis=-1).reshape(x.shape)


def full_sort(x: jax.Array) -> jax.Array:
    """Sorts all features of the last axis (GroupSort with one group)."""
    return jnp.sort(x, axis=-1)


def householder(x: jax.Array, theta: jax.Array) -> jax.Array:
    """Householder activation on consecutive feature pairs (Singla et al., 2022).

    With ``v = (cos theta, sin theta)`` per pair ``z``: ``z`` if ``v . z > 0`` else
    ``(I - 2 v v^T) z``. Both branches agree on the hyperplane ``v . z = 0``, so the
    map is continuous and a.e. orthogonal: 1-Lipschitz.

    Args:
      x: shape (..., 2 m).
      theta: shape (m,), one angle per pair.
    """
    n = x.shape[-1]
    if n % 2:
        raise ValueError(f"householder activation needs an even feature count; got {n}")
    z = x.reshape(*x.shape[:-1], n // 2, 2)
    v = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1).astype(x.dtype)
    dot = jnp.sum(z * v, axis=-1, keepdims=True)
    reflected = z - 2.0 * dot * v
    return jnp.where(dot > 0, z, reflected).reshape(x.shape)
