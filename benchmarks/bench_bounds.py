"""Time of each Lipschitz bound against depth and width (not a test).

Square random layers W_r in R^{w x w} (entries N(0, 1/w)), depth = number of
matrices l + 1 in {2, 5, 10, 20, 30, 40}, width w in {16, 64, 256}, l-inf norm.
Polynomial paths (K_star, K1 by DP, K3, K5 by DP) run everywhere; the
exponential ones (K1 and K4 by their 2^l sums, exact K over 2^(l w) patterns)
only below a cost cap (``--cap`` floating-point operations, estimated), and
are marked "-" above it.

    python benchmarks/bench_bounds.py [--out benchmarks/bounds_times.png]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np

from lipjax import bounds as B

DEPTHS = (2, 5, 10, 20, 30, 40)
WIDTHS = (16, 64, 256)


def timed(fn, *args, **kwargs) -> float:
    best = math.inf
    for _ in range(1):
        start = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=2e9, help="flop cap for exponential paths")
    default_out = os.path.join(os.path.dirname(__file__), "bounds_times.png")
    parser.add_argument("--out", default=default_out)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} logical CPUs, Python {platform.python_version()}, numpy {np.__version__}"
    )
    p = math.inf
    names = ("K_star", "K1", "K3", "K5", "K1_brute", "K4", "K")
    results: dict[tuple[int, int], dict[str, float]] = {}
    print(f"{'depth':>5} {'width':>5}" + "".join(f"{n:>10}" for n in names) + "   (seconds)")
    for width in WIDTHS:
        for depth in DEPTHS:
            rng = np.random.default_rng(0)
            ws = [rng.normal(size=(width, width)) / math.sqrt(width) for _ in range(depth)]
            l = depth - 1
            row: dict[str, float] = {}
            row["K_star"] = timed(B.k_star, ws, p)
            row["K1"] = timed(B.k1, ws, p)
            row["K3"] = timed(B.k3, ws, p)
            row["K5"] = timed(B.k5, ws, p)
            brute_cost = 2**l * (l + 1) * width**3 + depth**2 * width**3
            if brute_cost <= args.cap:
                row["K1_brute"] = timed(B.k1_bruteforce, ws, p, max_subsets=2**l)
                row["K4"] = timed(B.k4, ws, p, max_subsets=2**l)
            hidden = l * width
            if hidden <= 16:
                row["K"] = timed(B.k_exact, ws, p, max_patterns=2**hidden)
            results[(depth, width)] = row
            cells = "".join(f"{row[n]:>10.4f}" if n in row else f"{'-':>10}" for n in names)
            print(f"{depth:>5} {width:>5}{cells}", flush=True)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, len(WIDTHS), figsize=(5 * len(WIDTHS), 4), sharey=True)
    for ax, width in zip(axes, WIDTHS, strict=True):
        for name in names:
            pts = [(d, results[(d, width)][name]) for d in DEPTHS if name in results[(d, width)]]
            if pts:
                ax.semilogy(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_title(f"width {width}")
        ax.set_xlabel("depth (number of matrices)")
    axes[0].set_ylabel("seconds (l-inf)")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
