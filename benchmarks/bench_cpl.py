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
import sys
import time

import jax
from bench_common import machine, step_and_arguments

from lipjax import models


def throughput(batch: int, steps: int) -> float:
    step, (params, state, opt_state, x, y) = step_and_arguments(models.cpl("S"), batch)
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
    step, arguments = step_and_arguments(model, batch)
    start = time.perf_counter()
    step.lower(*arguments).compile()
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
