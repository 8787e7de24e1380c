"""Després-Pintore "Matrices with random weights": bound / K_star statistics.

W_1 in R^{10x8}, W_2 in R^{6x10}, W_3 in R^{3x6}, entries i.i.d. N(0, 1),
f = f_3 R f_2 R f_1; statistics of K/K*, K1/K*, K3/K*, K4/K* (and the new K5/K*)
over 1000 realizations, for the l1, l2 and l-inf induced norms, next to the
slides' values. The Monte-Carlo spread is the standard deviation, over
``--seeds`` independent runs, of each statistic.

    python experiments/bounds_random.py                # 1000 realizations x 5 seeds
    python experiments/bounds_random.py --realizations 100 --seeds 2   # smoke
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from lipjax import bounds as B

SLIDES = {  # statistic -> (K, K1, K2, K3, K4) / K*
    "max": (0.2772, 0.5786, 0.6789, 0.8023, 0.4608),
    "mean": (0.1422, 0.4539, 0.3256, 0.5461, 0.2875),
    "min": (0.0595, 0.3703, 0.1597, 0.2897, 0.1604),
    "std": (0.0343, 0.0350, 0.0685, 0.0813, 0.0483),
}
NAMES = ("K", "K1", "K3", "K4", "K5")
SHAPES = ((10, 8), (6, 10), (3, 6))


def ratios(rng: np.random.Generator, n: int, norms) -> dict[float, np.ndarray]:
    """Returns {p: array (n, len(NAMES))} of bound / K_star."""
    out = {p: np.zeros((n, len(NAMES))) for p in norms}
    for i in range(n):
        ws = [rng.standard_normal(s) for s in SHAPES]
        prods = B.pattern_products(ws)
        for p in norms:
            ks = B.k_star(ws, p)
            if p == 2.0:  # sigma_max via the (3 x 3) Gram matrices: 2x faster than SVD here
                gram = prods @ prods.transpose(0, 2, 1)
                k_val = float(np.sqrt(np.linalg.eigvalsh(gram)[:, -1].max()))
            else:
                k_val = float(np.max(B.matrix_norm(prods, p)))
            vals = (
                k_val,
                B.k1(ws, p),
                B.k3(ws, p),
                B.k4(ws, p),
                B.k5(ws, p),
            )
            out[p][i] = np.array(vals) / ks
    return out


def stats(r: np.ndarray) -> dict[str, np.ndarray]:
    return {"max": r.max(0), "mean": r.mean(0), "min": r.min(0), "std": r.std(0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realizations", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    norms = (1.0, 2.0, math.inf)
    start = time.perf_counter()
    # l2 only on seed 0 (its K needs an eigen-solve per pattern); l1, l-inf on every seed.
    per_seed = [
        ratios(np.random.default_rng(s), args.realizations, norms if s == 0 else norms[::2])
        for s in range(args.seeds)
    ]
    elapsed = time.perf_counter() - start
    print(
        f"{args.realizations} realizations x {args.seeds} seeds, "
        f"W: 8 -> 10 -> 6 -> 3, N(0,1) entries ({elapsed:.1f} s)"
    )
    print("entries: seed-0 value +- std over seeds of the statistic; slides' value in [ ]")
    for p in norms:
        name = {1.0: "l1", 2.0: "l2", math.inf: "l-inf"}[p]
        n_seeds = sum(p in r for r in per_seed)
        print(f"\nnorm {name} (spread over {n_seeds} seed(s))")
        print(f"{'stat':<5}" + "".join(f"{n + '/K*':>25}" for n in NAMES))
        for stat in ("max", "mean", "min", "std"):
            all_seeds = np.stack([stats(r[p])[stat] for r in per_seed if p in r])
            v0, spread = all_seeds[0], all_seeds.std(0)
            slide = SLIDES[stat]
            slide_cols = (slide[0], slide[1], slide[3], slide[4], None)
            cells = []
            for v, s, ref in zip(v0, spread, slide_cols, strict=True):
                ref_txt = f" [{ref:.4f}]" if ref is not None else " " * 9
                cells.append(f"{v:.4f}+-{s:.4f}{ref_txt}")
            print(f"{stat:<5}" + "".join(f"{c:>25}" for c in cells))
    print(
        "\nslides' K2/K* (Virmaux-Scaman, not defined in the slides, not computed): "
        + ", ".join(f"{k} {v[2]:.4f}" for k, v in SLIDES.items())
    )


if __name__ == "__main__":
    main()
