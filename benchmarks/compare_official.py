"""CPL train steps: lipjax against the official PyTorch code of Meunier et al., alternately, in one run.

Run:
  git clone https://github.com/MILES-PSL/Convex-Potential-Layer /path/to/official
  pip install torch==2.13.0        # optional benchmark dependency (CPU build)
  PYTHONPATH=. python benchmarks/compare_official.py --official /path/to/official [--batch 64]
  # on a GPU, the paper's batch and both sizes:
  PYTHONPATH=. python benchmarks/compare_official.py --official /path/to/official \
      --batch 256 --sizes S M --algorithms direct winograd

Both sides train a Table 1 network (CPL-S: 20 conv CPLs of 45 channels, 7 dense
CPLs of 2048 features; ``--sizes`` picks others) with a normalised last layer on
the same random batch with Adam (lr 1e-3), the multi-margin hinge (margin 0.7)
and one power-iteration step per layer. Where JAX runs on a GPU and PyTorch sees
one, both sides run there; PyTorch then lets cuDNN pick its convolution
algorithms (``cudnn.benchmark``), as the official trainer does.

The official model is imported from the checkout, never copied; its ``util.py``
imports attack libraries (advertorch, autoattack, pandas) that training does not
use: when they are not installed, empty placeholder modules stand in for them so
that the model can be imported.

The script alternates ``--rounds`` blocks of ``--steps`` steps of each side and
prints the median step time of each, images/s, the ratio, the time of one
CIFAR-10 epoch (50,000 images) at that rate, the model FLOPs per step
(direct-convolution count) as GFLOP/s against this machine's measured float32
matmul peak, and lipjax's compile time, for each ``--algorithms`` value (how
lipjax computes the 3x3 convolutions: ``auto``, ``winograd``, ``direct``).
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

CLASSES, CIFAR10_TRAIN_IMAGES = 10, 50_000


def cpl_flops(size: models.CPLSize, batch: int) -> float:
    """Multiply-adds x 2 of one train step with direct convolutions: each CPL runs two
    convolutions (or matmuls) forward and four backward."""
    conv = 2 * batch * 32 * 32 * 9 * size.channels**2
    dense = 2 * batch * size.channels * 8 * 8 * size.features
    return 6 * (size.conv_layers * conv + size.linear_layers * dense)


def matmul_peak(torch=None, device: str = "cpu", n: int = 2048) -> tuple[float, float | None]:
    """Float32 GFLOP/s of an n^3 matmul in XLA (and in PyTorch on ``device`` when given), each
    at its library's default precision (on recent GPUs XLA's default uses TF32 passes)."""
    if device != "cpu":
        n = 8192  # a 2048^3 product is too short to time a GPU
    a = jax.random.normal(jax.random.key(0), (n, n))
    dot = jax.jit(jnp.dot)
    xla = 2 * n**3 / fastest(lambda: dot(a, a).block_until_ready(), 5) / 1e9
    if torch is None:
        return xla, None
    t = torch.randn(n, n, device=device)

    def mm():
        torch.mm(t, t)
        _synchronize(torch, device)

    return xla, 2 * n**3 / fastest(mm, 5) / 1e9


def _synchronize(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# --- lipjax ------------------------------------------------------------------------------


def lipjax_step(size: str, algorithm: str, batch: int):
    """lipjax's CPL train step (buffers donated) as a blocking call, and its compile seconds."""
    step, arguments = step_and_arguments(models.cpl(size, conv_algorithm=algorithm), batch, donate=True)
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


def official_step(path: str, size: models.CPLSize, batch: int, torch, device: str):
    """The official ConvexPotentialLayerNetwork (``size``'s widths) with its Adam/hinge step on
    ``device``."""
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
    net = (
        official.ConvexPotentialLayerNetwork(
            depth=size.conv_layers,
            num_classes=CLASSES,
            depth_linear=size.linear_layers,
            conv_size=size.channels,
            num_channels=size.channels,
            n_features=size.features,
            use_lln=True,
        )
        .to(device)
        .train()
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, CLASSES, (batch,), device=device)

    def run():
        optimizer.zero_grad()
        loss = torch.nn.functional.multi_margin_loss(net(x), y, margin=0.7)
        loss.backward()
        optimizer.step()
        _synchronize(torch, device)

    return run, placeholders


def set_gpu_precision(choice: str, torch) -> None:
    """``"tf32"``: TF32 in PyTorch's matmuls too (JAX's default has it everywhere); ``"float32"``:
    full float32 in both libraries; ``"defaults"``: leave both as they are."""
    if choice == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
    elif choice == "float32":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        jax.config.update("jax_default_matmul_precision", "highest")


def median_step(run, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(args, size_name: str, torch, device: str, peaks: tuple[float, float]) -> None:
    """Prints one size's comparison: each side's median step, images/s, epoch time, GFLOP/s."""
    size = models.CPL_SIZES[size_name]
    theirs, placeholders = official_step(args.official, size, args.batch, torch, device)
    if placeholders:
        print(f"(placeholders for unused imports of the official util.py: {', '.join(placeholders)})")
    ours = {}
    for algorithm in args.algorithms:
        ours[algorithm], compile_s = lipjax_step(size_name, algorithm, args.batch)
        print(f"lipjax CPL-{size_name} conv_algorithm={algorithm}: compile {compile_s:.1f} s")
    for run in (theirs, *ours.values()):
        run()  # warm-up (and cuDNN's algorithm search)
    times = {name: [] for name in ("official", *ours)}
    for _ in range(args.rounds):
        times["official"].append(median_step(theirs, args.steps))
        for algorithm, run in ours.items():
            times[algorithm].append(median_step(run, args.steps))
    flops = cpl_flops(size, args.batch)
    official = statistics.median(times["official"])
    print(
        f"CPL-{size_name} train step, batch {args.batch}, {flops / 1e9:.0f} GFLOP (direct count), "
        f"median of {args.rounds} blocks of {args.steps} steps:"
    )
    for name, block_times in times.items():
        t = statistics.median(block_times)
        label = "official PyTorch" if name == "official" else f"lipjax ({name})"
        peak = peaks[1] if name == "official" else peaks[0]
        print(
            f"  {label:<20} {t * 1e3:8.1f} ms  {args.batch / t:7.1f} images/s  "
            f"CIFAR-10 epoch {CIFAR10_TRAIN_IMAGES * t / args.batch:6.1f} s  "
            f"{flops / t / 1e9:6.0f} GFLOP/s ({flops / t / 1e9 / peak:.0%} of its matmul peak)  "
            f"ratio to official {official / t:.2f}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official", required=True, help="path of a checkout of MILES-PSL/Convex-Potential-Layer"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", nargs="+", default=["S"], choices=sorted(models.CPL_SIZES))
    parser.add_argument("--steps", type=int, default=3, help="steps per block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per side")
    parser.add_argument("--algorithms", nargs="+", default=["auto", "direct"])
    parser.add_argument(
        "--gpu-precision",
        choices=("defaults", "tf32", "float32"),
        default="defaults",
        help="on a GPU: each library's default (JAX: TF32 passes in matmuls and convolutions; PyTorch: "
        "in cuDNN convolutions only), TF32 in both, or full float32 in both",
    )
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is needed for the official code: pip install torch==2.13.0") from None
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        torch.backends.cudnn.benchmark = True  # as the official trainer sets it
        set_gpu_precision(args.gpu_precision, torch)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine()}; torch {torch.__version__} on {device}")
    if device == "cuda":
        print(
            f"  {torch.cuda.get_device_name()}; PyTorch TF32: "
            f"matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32}; "
            f"JAX matmul precision: {jax.config.jax_default_matmul_precision or 'default'}"
        )
    peaks = matmul_peak(torch, device)
    print(
        f"float32 matmul at each library's precision setting: XLA {peaks[0]:.0f} GFLOP/s, "
        f"PyTorch {peaks[1]:.0f} GFLOP/s"
    )
    for size_name in args.sizes:
        compare(args, size_name, torch, device, peaks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
