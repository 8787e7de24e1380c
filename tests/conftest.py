"""Shared helpers for the tests."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipjax.layers import POWER_ITERATION

# The tests compare float32 results (and exact Jacobians) to float32 tolerance. On GPUs and TPUs
# JAX's default matmul/convolution precision uses TF32 or bf16 passes (about 1e-3 relative), which
# no such tolerance survives: run the tests at full float32 precision on every backend, unless the
# environment chooses a precision (JAX_DEFAULT_MATMUL_PRECISION=default runs them as training
# does). Certification sets full precision itself (lipjax.export.CERTIFIED_PRECISION).
if "JAX_DEFAULT_MATMUL_PRECISION" not in os.environ:
    jax.config.update("jax_default_matmul_precision", "highest")


def train_a_few_steps(model, variables, x, steps: int = 3, learning_rate: float = 1e-2):
    """A few Adam steps on a random regression loss, updating the power-iteration state."""
    if "params" not in variables:
        return variables
    target = jax.random.normal(jax.random.key(123), model.apply(variables, x).shape)
    params = variables["params"]
    state = {k: v for k, v in variables.items() if k != "params"}
    optimizer = optax.adam(learning_rate)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, state, opt_state):
        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, **state}, x, update_stats=True, mutable=[POWER_ITERATION]
            )
            return jnp.mean((out - target) ** 2), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), {**state, **updates}, opt_state

    for _ in range(steps):
        params, state, opt_state = step(params, state, opt_state)
    return {"params": params, **state}


def jacobian_singular_values(fn, points) -> np.ndarray:
    """Singular values of the exact Jacobian of ``fn`` (one input -> output) at each point.

    Reverse mode: lipjax's convolutions carry custom VJPs."""
    jac = jax.vmap(jax.jacrev(fn))(points)
    n = points.shape[0]
    matrices = np.asarray(jac, np.float64).reshape(n, -1, int(np.prod(points.shape[1:])))
    return np.linalg.svd(matrices, compute_uv=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
