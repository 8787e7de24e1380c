"""Training throughput (images/s) and time to first step (compilation), on this machine.

Usage (from the repository root)::

    python benchmarks/bench_training.py                 # both benchmarks
    python benchmarks/bench_training.py --only mnist --steps 50
    python benchmarks/bench_training.py --only cifar10_cpl_s --cifar ../shared/data/cifar10-jpeg.tar.gz

- ``mnist``: the default config (``lipjax/configs/mnist.py``) on the
  embedded MNIST subset.
- ``cifar10_cpl_s``: CPL-S (Table 1) with the paper's recipe (batch 256, crop and
  flip augmentation, margin 0.7) on CIFAR-10 images: the test split of the JPEG
  tarball when it is there (8,000 images), else synthetic 32x32x3 images.

Prints one JSON line per benchmark: time to first step (trace + compile + the
first step), steady-state seconds per step and images per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from lipjax import data as data_lib  # noqa: E402
from lipjax.training import experiment_for, load_config, make_mesh, shard_batch  # noqa: E402
from lipjax.training.steps import replicated  # noqa: E402


def bench(cfg: dict, ds: data_lib.Dataset, steps: int, warmup: int = 2) -> dict:
    """Times the config's own train step (built by ``experiment_for``, as in training) on ``ds``."""
    experiment = experiment_for(cfg, ds)
    batch = cfg["batch_size"]
    total = steps + warmup + 1
    mesh = make_mesh()
    t0 = time.perf_counter()
    state = jax.device_put(experiment.init_state(), replicated(mesh))
    step = experiment.train_step(mesh)
    batches = []
    epoch = 0
    while len(batches) < total:
        batches += list(data_lib.batches(ds, batch, seed=0, epoch=epoch))
        epoch += 1
    placed = [shard_batch(mesh, x, y) for x, y in batches[:total]]
    state, m = step(state, *placed[0])
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    for i in range(1, 1 + warmup):
        state, m = step(state, *placed[i])
    jax.block_until_ready(m)
    t1 = time.perf_counter()
    for i in range(1 + warmup, total):
        state, m = step(state, *placed[i])
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t1) / steps
    return {
        "config": cfg["name"],
        "batch_size": batch,
        "time_to_first_step_s": round(first, 2),
        "seconds_per_step": round(dt, 4),
        "images_per_second": round(batch / dt, 1),
        "steps_timed": steps,
        "devices": f"{jax.device_count()} x {jax.devices()[0].platform}",
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["mnist", "cifar10_cpl_s"], default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 40 / 3)")
    parser.add_argument("--cifar", default="../shared/data/cifar10-jpeg.tar.gz")
    args = parser.parse_args()
    if args.only in (None, "mnist"):
        cfg = load_config("mnist")
        ds = data_lib.load("mnist", "train")
        print(json.dumps(bench(cfg, ds, args.steps or 40)), flush=True)
    if args.only in (None, "cifar10_cpl_s"):
        cfg = load_config("cifar10_cpl_s")
        if Path(args.cifar).exists():
            t = time.perf_counter()
            ds = data_lib.load("cifar10", "test", source="folder", path=args.cifar)
            src = f"{len(ds)} CIFAR-10 JPEG test images (read in {time.perf_counter() - t:.1f} s)"
        else:
            ds = data_lib.load("cifar10", "train", source="synthetic", path="1024")
            src = "synthetic 32x32x3 images (CIFAR-10 tarball not found)"
        out = bench(cfg, ds, args.steps or 3, warmup=1)
        out["data"] = src
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
