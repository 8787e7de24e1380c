"""CPL-S train step: lipjax against the official PyTorch code of Meunier et al., alternately, in one run.

Run:
  git clone https://github.com/MILES-PSL/Convex-Potential-Layer /path/to/official
  pip install torch==2.13.0        # optional benchmark dependency (CPU build)
  PYTHONPATH=. python benchmarks/compare_official.py --official /path/to/official [--batch 64]

Both sides train the Table 1 CPL-S network (20 conv CPLs of 45 channels, 7 dense
CPLs of 2048 features, normalised last layer) on the same random batch with Adam
(lr 1e-3), the multi-margin hinge (margin 0.7) and one power-iteration step per
layer. The official model is imported from the checkout, never copied; its
``util.py`` imports attack libraries (advertorch, autoattack, pandas) that
training does not use: when they are not installed, empty placeholder modules
stand in for them so that the model can be imported.

The script alternates ``--rounds`` blocks of ``--steps`` steps of each side and
prints the median step time of each, images/s, the ratio, the model FLOPs per
step (direct-convolution count) as GFLOP/s against this machine's measured
float32 matmul peak, and lipjax's compile time, for each ``--algorithms`` value
(how lipjax computes the 3x3 convolutions: ``auto``, ``winograd``, ``direct``).
Figures describe the machine and library versions they ran on.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
import types

import jax
import jax.numpy as jnp
from bench_common import fastest, machine, step_and_arguments

from lipjax import models

CHANNELS, CONV_LAYERS, LINEAR_LAYERS, FEATURES, CLASSES = 45, 20, 7, 2048, 10


def cpl_s_flops(batch: int) -> float:
    """Multiply-adds x 2 of one train step with direct convolutions: each CPL runs two
    convolutions (or matmuls) forward and four backward."""
    conv = 2 * batch * 32 * 32 * 9 * CHANNELS * CHANNELS
    dense = 2 * batch * CHANNELS * 8 * 8 * FEATURES
    return 6 * (CONV_LAYERS * conv + LINEAR_LAYERS * dense)


def matmul_peak(torch=None, n: int = 2048) -> tuple[float, float | None]:
    """Float32 GFLOP/s of an n^3 matmul in XLA (and in PyTorch when given)."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    xla = 2 * n**3 / fastest(lambda: dot(a, a).block_until_ready(), 5) / 1e9
    if torch is None:
        return xla, None
    t = torch.randn(n, n)
    return xla, 2 * n**3 / fastest(lambda: torch.mm(t, t), 5) / 1e9


# --- lipjax ------------------------------------------------------------------------------


def lipjax_step(algorithm: str, batch: int):
    """lipjax's CPL-S train step (buffers donated) as a blocking call, and its compile seconds."""
    step, arguments = step_and_arguments(models.cpl("S", conv_algorithm=algorithm), batch, donate=True)
    start = time.perf_counter()
    compiled = step.lower(*arguments).compile()
    compile_s = time.perf_counter() - start
    carry, (x, y) = list(arguments[:3]), arguments[3:]

    def run():
        carry[0], carry[1], carry[2], loss = compiled(*carry, x, y)
        loss.block_until_ready()

    return run, compile_s


# --- the official code ---------------------------------------------------------------------


def _placeholders_for_attack_libraries() -> list[str]:
    """Stand-ins for imports of the official util.py that training never calls."""
    missing = []
    for name, attrs in (
        ("advertorch.attacks", ("L2PGDAttack",)),
        ("autoattack", ("AutoAttack",)),
        ("pandas", ()),
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
            module = types.ModuleType(name)
            for attr in attrs:
                setattr(module, attr, None)
            sys.modules[name] = module
            if "." in name:
                parent = types.ModuleType(name.split(".")[0])
                setattr(parent, name.split(".")[1], module)
                sys.modules.setdefault(name.split(".")[0], parent)
    return missing


def official_step(path: str, batch: int, torch):
    """The official ConvexPotentialLayerNetwork (CPL-S widths) with its Adam/hinge step."""
    if not os.path.isfile(os.path.join(path, "model.py")):
        raise SystemExit(
            f"--official {path!r}: no model.py there; pass a checkout of MILES-PSL/Convex-Potential-Layer"
        )
    placeholders = _placeholders_for_attack_libraries()
    sys.path.insert(0, path)
    try:
        official = importlib.import_module("model")
    finally:  # the official modules keep their references; nothing else should see the stand-ins
        for name in placeholders:
            sys.modules.pop(name, None)
            sys.modules.pop(name.split(".")[0], None)
    torch.manual_seed(0)
    net = official.ConvexPotentialLayerNetwork(
        depth=CONV_LAYERS,
        num_classes=CLASSES,
        depth_linear=LINEAR_LAYERS,
        conv_size=CHANNELS,
        num_channels=CHANNELS,
        n_features=FEATURES,
        use_lln=True,
    ).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, CLASSES, (batch,))

    def run():
        optimizer.zero_grad()
        loss = torch.nn.functional.multi_margin_loss(net(x), y, margin=0.7)
        loss.backward()
        optimizer.step()

    return run, placeholders


def median_step(run, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official", required=True, help="path of a checkout of MILES-PSL/Convex-Potential-Layer"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="steps per block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per side")
    parser.add_argument("--algorithms", nargs="+", default=["auto", "direct"])
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is needed for the official code: pip install torch==2.13.0") from None
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; torch {torch.__version__}")
    xla_peak, torch_peak = matmul_peak(torch)
    print(f"float32 2048^3 matmul: XLA {xla_peak:.0f} GFLOP/s, PyTorch {torch_peak:.0f} GFLOP/s")
    theirs, placeholders = official_step(args.official, args.batch, torch)
    if placeholders:
        print(f"(placeholders for unused imports of the official util.py: {', '.join(placeholders)})")
    ours = {}
    for algorithm in args.algorithms:
        ours[algorithm], compile_s = lipjax_step(algorithm, args.batch)
        print(f"lipjax conv_algorithm={algorithm}: compile {compile_s:.1f} s")
    for run in (theirs, *ours.values()):
        run()  # warm-up
    times = {name: [] for name in ("official", *ours)}
    for _ in range(args.rounds):
        times["official"].append(median_step(theirs, args.steps))
        for algorithm, run in ours.items():
            times[algorithm].append(median_step(run, args.steps))
    flops = cpl_s_flops(args.batch)
    official = statistics.median(times["official"])
    print(
        f"CPL-S train step, batch {args.batch}, {flops / 1e9:.0f} GFLOP (direct count), "
        f"median of {args.rounds} blocks:"
    )
    for name, block_times in times.items():
        t = statistics.median(block_times)
        label = "official PyTorch" if name == "official" else f"lipjax ({name})"
        peak = torch_peak if name == "official" else xla_peak
        print(
            f"  {label:<20} {t * 1e3:8.0f} ms  {args.batch / t:6.1f} images/s  "
            f"{flops / t / 1e9:5.0f} GFLOP/s ({flops / t / 1e9 / peak:.0%} of its matmul peak)  "
            f"ratio to official {official / t:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
