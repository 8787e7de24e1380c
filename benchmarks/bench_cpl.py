"""CPL training-step throughput and compile time against depth.

Run:  python benchmarks/bench_cpl.py [--steps 5] [--batch 64] [--depths 20 100 1000]

Measures, on the machine it runs on:
1. CPL-S (Table 1) train-step throughput, images/s at batch 64 (Adam, multi-margin hinge,
   one power-iteration step per layer), after compilation;
2. jit compile time of a train step against the number of conv CPL layers (CPL-S
   widths; ``nn.scan`` keeps it flat);

The comparison with the official PyTorch code is ``benchmarks/compare_official.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import optax

from lipjax import layers, models


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.devices()[0].platform}"


def hinge(logits, labels, margin=0.7):
    """PyTorch multi_margin_loss (p=1)."""
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    losses = jnp.maximum(0.0, margin - own + logits)
    losses = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), 0.0, losses)
    return losses.sum(-1).mean() / logits.shape[-1]


def make_step(model, optimizer):
    @jax.jit
    def step(params, state, opt_state, x, y):
        def loss_fn(params):
            logits, updates = model.apply(
                {"params": params, **state}, x, update_stats=True, mutable=[layers.POWER_ITERATION]
            )
            return hinge(logits, y), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), updates, opt_state, loss

    return step


def setup(model, batch):
    x = jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3))
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 10)
    variables = jax.jit(model.init)(jax.random.key(2), x)
    params = variables.pop("params")
    optimizer = optax.adam(1e-3)
    return make_step(model, optimizer), params, variables, optimizer.init(params), x, y


def throughput(batch: int, steps: int) -> float:
    step, params, state, opt_state, x, y = setup(models.cpl("S"), batch)
    params, state, opt_state, loss = step(params, state, opt_state, x, y)
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(steps):
        params, state, opt_state, loss = step(params, state, opt_state, x, y)
    jax.block_until_ready(loss)
    return batch * steps / (time.perf_counter() - start)


def compile_seconds(conv_layers: int, batch: int) -> float:
    size = models.CPL_SIZES["S"]
    model = models.cpl_network(conv_layers, size.channels, size.linear_layers, size.features)
    step, params, state, opt_state, x, y = setup(model, batch)
    start = time.perf_counter()
    step.lower(params, state, opt_state, x, y).compile()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--depths", type=int, nargs="*", default=[20, 100, 1000])
    args = parser.parse_args(argv)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    ours = throughput(args.batch, args.steps)
    print(f"CPL-S train step, batch {args.batch}: {ours:.1f} images/s (lipjax)")
    for depth in args.depths:
        print(f"compile time, {depth:>5} conv CPL layers: {compile_seconds(depth, args.batch):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
