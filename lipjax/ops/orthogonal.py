"""Orthonormalisation of weight matrices."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bjorck(w: jax.Array, num_iters: int = 15, beta: float = 0.5) -> jax.Array:
    """Björck orthonormalisation ``W <- (1 + beta) W - beta W W^T W``, repeated.

    Converges to the closest orthonormal matrix (the polar factor) when
    ``||W||_2 <= 1`` at the start; the usual ``beta = 1/2`` is the first-order
    Taylor step. ``w`` has shape (in, out) (Flax kernel layout); the iteration
    runs on the smaller Gram side.

    References:
      Björck and Bowie, An iterative algorithm for computing the best estimate
      of an orthogonal matrix, SIAM J. Numer. Anal. 1971.
      Anil, Lucas, Grosse, Sorting out Lipschitz function approximation, ICML 2019.
    """
    transposed = w.shape[0] < w.shape[1]
    if transposed:
        w = w.T

    def step(_, w):
        return (1.0 + beta) * w - beta * w @ (w.T @ w)

    w = jax.lax.fori_loop(0, num_iters, step, w)
    return w.T if transposed else w


def reshaped_kernel_matrix(kernel: jax.Array) -> jax.Array:
    """An HWIO kernel as the (H*W*I, O) matrix deel-lip orthonormalises."""
    return jnp.reshape(kernel, (-1, kernel.shape[-1]))
