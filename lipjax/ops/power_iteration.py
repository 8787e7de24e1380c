"""Power iteration on dense and convolutional operators.

Power iteration converges to the largest singular value *from below*: its
estimate is a lower bound, good for training (cheap, warm-started, one step
per update) but never for certificates. :mod:`lipjax.ops.spectral_bounds` gives
the guaranteed upper bounds used for certification.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from lipjax.ops.conv import PaddingLike, conv, conv_transpose

LinearMap = Callable[[jax.Array], jax.Array]


def l2_normalize(v: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``v / max(||v||_2, eps)`` over all entries."""
    return v / jnp.maximum(jnp.linalg.norm(v.ravel()), eps)


def power_iteration(
    forward: LinearMap,
    transpose: LinearMap,
    u: jax.Array,
    num_iters: int,
) -> tuple[jax.Array, jax.Array]:
    """Runs ``num_iters`` power-iteration steps on ``A^T A`` from ``u``.

    One step: ``v = A u / ||A u||``, ``u = A^T v / ||A^T v||``. After the steps
    the estimate is ``sigma = ||A u||`` (Algorithm 1 of Meunier et al., 2022), a
    lower bound of ``||A||_2`` that converges at rate ``(sigma_2 / sigma_1)^{2k}``.

    Args:
      forward: the linear map ``u -> A u``.
      transpose: its adjoint ``v -> A^T v``.
      u: starting vector (any non-zero array in the input space of ``A``).
      num_iters: number of steps (0 returns the estimate at ``u``).

    Returns:
      ``(u, sigma)``: the new unit vector and the estimate ``||A u||_2``.

    References:
      Miyato et al., Spectral normalization for GANs, ICLR 2018.
    """
    u = l2_normalize(u)

    def step(_, u):
        v = l2_normalize(forward(u))
        return l2_normalize(transpose(v))

    u = jax.lax.fori_loop(0, num_iters, step, u) if num_iters > 0 else u
    return u, jnp.linalg.norm(forward(u).ravel())


def dense_operator(kernel: jax.Array) -> tuple[LinearMap, LinearMap]:
    """``(A, A^T)`` for a Flax dense kernel of shape (in, out): ``A u = u @ kernel``."""
    return (lambda u: u @ kernel), (lambda v: v @ kernel.T)


def conv_operator(
    kernel: jax.Array,
    input_shape: Sequence[int],
    strides: Sequence[int] = (1, 1),
    padding: PaddingLike = "SAME",
    algorithm: str = "direct",
) -> tuple[LinearMap, LinearMap]:
    """``(A, A^T)`` for the convolution on single images of shape ``input_shape`` (H, W, C).

    The operator is the layer's real one: the same input size, padding and stride
    as its forward pass. Vectors have shape ``input_shape`` (no batch axis).
    ``algorithm``: as in :func:`lipjax.ops.conv` (training layers pass theirs, so
    the gradient of the estimate is computed the same fast way).
    """
    input_shape = tuple(input_shape)

    def forward(u):
        return conv(u[None], kernel, strides, padding, algorithm)[0]

    def transpose(v):
        return conv_transpose(v[None], kernel, input_shape, strides, padding, algorithm)[0]

    return forward, transpose
