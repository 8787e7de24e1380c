"""Memory of a CPL train step against depth, with and without rematerialization.

Run:  PYTHONPATH=. python benchmarks/bench_memory.py [--channels 45] [--batch 64]
      [--depths 20 100 1000] [--run 1000]

For each depth (conv CPL layers of the CPL-S shape: 32x32 images, ``--channels``
channels, 7 dense CPLs of 2048, LLN head) and ``remat`` off / on, prints XLA's
memory analysis of the compiled train step (temporaries: the activations kept for
the backward pass; arguments: parameters, optimizer state, batch). ``--run DEPTH``
also runs one step of that depth with remat in a fresh process and prints its
peak resident memory and step time. Figures are the machine's and versions'.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import jax
from bench_common import step_and_arguments

from lipjax import models

GIB = 2**30


def build_step(depth: int, channels: int, batch: int, remat: bool):
    model = models.cpl_network(depth, channels, 7, 2048, remat=remat)
    step, arguments = step_and_arguments(model, batch, donate=True)
    return step.lower(*arguments).compile(), arguments


def analyse(depth: int, channels: int, batch: int, remat: bool) -> str:
    compiled, _ = build_step(depth, channels, batch, remat)
    memory = compiled.memory_analysis()
    return (
        f"depth {depth:>5}, remat {'on ' if remat else 'off'}: "
        f"temporaries {memory.temp_size_in_bytes / GIB:6.2f} GiB, "
        f"arguments {memory.argument_size_in_bytes / GIB:5.2f} GiB"
    )


def run_one(depth: int, channels: int, batch: int) -> None:
    compiled, args = build_step(depth, channels, batch, remat=True)
    carry = list(args[:3])
    for _ in range(2):  # the second step is timed
        start = time.perf_counter()
        carry[0], carry[1], carry[2], loss = compiled(*carry, *args[3:])
        loss.block_until_ready()
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    print(
        f"ran depth {depth}, remat on, batch {batch}: step {seconds:.1f} s, "
        f"loss {float(loss):.4f}, peak RSS {peak:.2f} GiB"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=45)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--depths", type=int, nargs="*", default=[20, 100, 1000])
    parser.add_argument("--run", type=int, default=0, help="run one step of this depth (remat on)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_one(args.run, args.channels, args.batch)
        return 0
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.channels} channels, batch {args.batch}"
    )
    for depth in args.depths:
        for remat in (False, True):
            print(analyse(depth, args.channels, args.batch, remat), flush=True)
    if args.run:
        command = [sys.executable, __file__, "--child", "--run", str(args.run)]
        command += ["--channels", str(args.channels), "--batch", str(args.batch)]
        subprocess.run(command, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
