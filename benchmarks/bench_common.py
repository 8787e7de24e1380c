"""Pieces every benchmark script shares: the machine line, a plain CPL train step, a timer."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax
import optax

from lipjax import layers, losses


def machine() -> str:
    """CPU, core count, JAX version and backend: printed with every figure."""
    cpu = platform.processor() or platform.machine()
    device = jax.devices()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"Python {platform.python_version()}"
    )


def train_step(model, optimizer: optax.GradientTransformation) -> Callable:
    """``step(params, state, opt_state, x, y) -> (params, state, opt_state, loss)``, not jitted.

    One optimizer update on the mean multi-margin hinge (PyTorch's ``multi_margin_loss``,
    margin 0.7, the CPL paper's), with one power-iteration update per layer.
    """

    def step(params, state, opt_state, x, y):
        def loss_fn(params):
            logits, updates = model.apply(
                {"params": params, **state}, x, update_stats=True, mutable=[layers.POWER_ITERATION]
            )
            return losses.multi_margin_loss(logits, y).mean(), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), {**state, **updates}, opt_state, loss

    return step


def fastest(run: Callable[[], object], reps: int) -> float:
    """Seconds of the fastest of ``reps`` calls of ``run`` (which must block), after one warm-up:
    other load on the machine inflates medians more than minima."""
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def step_and_arguments(model, batch: int, donate: bool = False, learning_rate: float = 1e-3):
    """The jitted :func:`train_step` of ``model`` under Adam, and its first arguments on a random
    CIFAR-shaped batch: ``(step, (params, state, opt_state, x, y))``. ``donate`` donates the
    parameters, state and optimizer buffers (call with fresh ones each step)."""
    x = jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3))
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 10)
    variables = jax.jit(model.init)(jax.random.key(2), x)
    params = variables.pop("params")
    optimizer = optax.adam(learning_rate)
    step = jax.jit(train_step(model, optimizer), donate_argnums=(0, 1, 2) if donate else ())
    return step, (params, variables, optimizer.init(params), x, y)
