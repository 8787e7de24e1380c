"""Per layer type, the same LipConvNet network: step time, memory, compile time, accuracy.

Run:  python benchmarks/bench_layers.py [--layers cpl sll aol cayley soc spectral]
          [--size XS] [--batch 64] [--steps 20] [--budget 500]
          [--data ../shared/data/cifar10-jpeg.tar.gz] [--test 1000]

For each layer type, on ``lipjax.models.lipconvnet(layer, size)`` (Prach et al.,
2024: the same shape for every layer) and the machine it runs on:

1. compile time of one jitted train step (Adam, multi-margin hinge loss);
2. train-step time, median over ``--steps`` steps after compilation;
3. memory: XLA's compiled estimate of the step (arguments + outputs + temporaries),
   and on an accelerator the device's peak bytes in use so far in the process (it does not
   reset between rows, so each row's figure covers its own and every earlier layer);
4. with the CIFAR-10 tarball present (skipped otherwise): clean and certified
   accuracy (l2, eps = 36/255, certified on the *exported* model) after a fixed
   budget of ``--budget`` train steps.

Prints one markdown table with the command that produced it. Timings depend on
the host; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_common import machine, train_step

from lipjax import export, models

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
EPS = 36 / 255


def compiled_bytes(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def device_peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def load_cifar(path: Path, test: int):
    from lipjax import data

    train = data.load("cifar10", "train", path=path)
    test_set = data.load("cifar10", "test", path=path)
    # the files are ordered by class: draw a seeded random subset, not the first images
    pick = np.random.default_rng(1).permutation(len(test_set))[:test]
    return (train.float_images(), train.labels), (
        data.to_float(test_set.images[pick]),
        test_set.labels[pick],
    )


def bench_layer(layer: str, args, cifar) -> dict:
    model = models.lipconvnet(layer, args.size)
    rng = np.random.default_rng(0)
    if cifar is None:
        x = jax.random.uniform(jax.random.key(0), (args.batch, 32, 32, 3))
        y = jax.random.randint(jax.random.key(1), (args.batch,), 0, 10)
    else:
        (images, labels), _ = cifar
        idx = rng.choice(len(images), args.batch, replace=False)
        x, y = jnp.asarray(images[idx]), jnp.asarray(labels[idx])
    variables = jax.jit(model.init)(jax.random.key(2), x)
    params = variables.pop("params")
    state = dict(variables)
    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(params)
    step = jax.jit(train_step(model, optimizer))

    start = time.perf_counter()
    compiled = step.lower(params, state, opt_state, x, y).compile()
    compile_s = time.perf_counter() - start
    row = {"layer": layer, "compile_s": compile_s, "xla_bytes": compiled_bytes(compiled)}

    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        params, state, opt_state, loss = compiled(params, state, opt_state, x, y)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - start)
    row["step_ms"] = 1000 * statistics.median(times)
    row["device_peak_bytes"] = device_peak_bytes()

    if cifar is not None:
        (images, labels), (test_x, test_y) = cifar
        for _ in range(args.budget):
            idx = rng.choice(len(images), args.batch, replace=False)
            params, state, opt_state, loss = compiled(
                params, state, opt_state, jnp.asarray(images[idx]), jnp.asarray(labels[idx])
            )
        exported = export.export(model, {"params": params, **state}, (32, 32, 3))
        clean, certified = exported.certified_accuracy(test_x, test_y, [0.0, EPS], batch_size=250)
        row.update(clean=float(clean), certified=float(certified))
    return row


def _mb(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f}"


def table(rows, with_accuracy: bool) -> str:
    head = "| layer | compile (s) | step (ms) | XLA step memory (MiB) | device peak so far (MiB) |"
    rule = "|---|---|---|---|---|"
    if with_accuracy:
        head += " clean acc | certified acc (36/255) |"
        rule += "---|---|"
    lines = [head, rule]
    for r in rows:
        line = (
            f"| {r['layer']} | {r['compile_s']:.1f} | {r['step_ms']:.1f} | {_mb(r['xla_bytes'])} "
            f"| {_mb(r['device_peak_bytes'])} |"
        )
        if with_accuracy:
            line += f" {100 * r['clean']:.1f}% | {100 * r['certified']:.1f}% |"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", default=sorted(models.LIPCONVNET_LAYERS))
    parser.add_argument("--size", default="XS", choices=sorted(models.LIPCONVNET_BASE_WIDTHS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed train steps")
    parser.add_argument("--budget", type=int, default=500, help="train steps before measuring accuracy")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIFAR-10 JPEG tarball")
    parser.add_argument("--test", type=int, default=1000, help="test images for the accuracies")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.layers) - set(models.LIPCONVNET_LAYERS))
    if unknown:
        parser.error(f"unknown layer types {unknown}; choose from {sorted(models.LIPCONVNET_LAYERS)}")

    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}")
    cifar = None
    if args.data.exists():
        cifar = load_cifar(args.data, args.test)
        print(f"data: {args.data} ({len(cifar[0][0])} train, {len(cifar[1][0])} test images)")
    else:
        print(f"data: {args.data} not found; accuracy columns skipped (random inputs for timing)")
    rows = []
    for layer in args.layers:
        rows.append(bench_layer(layer, args, cifar))
        print(f"done: {table(rows[-1:], cifar is not None).splitlines()[-1]}", flush=True)
    print(table(rows, cifar is not None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
