"""Després-Pintore "Results and optimality of K4": the x - sum g_r / 4^r network.

f(x) = x - sum_{r=1}^{l} g_r(x) / 4^r with the hat g and g_r = g o ... o g,
for l = 1..6, built by :func:`lipjax.bounds.hat_network` (3 ReLUs per hidden
layer, ``g(y) = 1 - R(2y - 1) - R(1 - 2y)`` by default: the slides'
representation). Prints the exact L (piecewise-linear breakpoints), exact K,
K*, K1, K3, K4 and the new K5, next to the slides' values.

    python experiments/bounds_hat.py [--norm inf] [--representation slides|ramp]
"""

from __future__ import annotations

import argparse

from lipjax import bounds as B

SLIDES = {  # l: (L, K*, K1, K2, K3, K4)
    1: (1.5, 3.0, 2.0, 1.5, 2.0, 1.5),
    2: (1.75, 9.0, 3.53125, 3.64531, 3.0, 1.75),
    3: (1.875, 33.0, 6.92187, 6.45925, 4.0, 1.875),
    4: (1.93875, 129.0, 14.42877, 12.45882, 5.0, 1.93875),
    5: (1.96875, 513.0, 30.75637, 24.68184, 6.0, 1.96875),
    6: (1.984375, 2049.0, 66.00227, 49.24501, 7.0, 1.984375),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norm", default="inf")
    parser.add_argument("--representation", default="slides", choices=["slides", "ramp"])
    args = parser.parse_args()
    p = B.parse_norm(args.norm)
    cols = ("L", "K", "K_star", "K1", "K3", "K4", "K5")
    print(f"norm l{args.norm}, {args.representation} representation; each cell: ours [slides]")
    print(f"{'l':>2} " + "".join(f"{c:>22}" for c in cols))
    for depth in range(1, 7):
        ws, bs = B.hat_network(depth, args.representation)
        values = B.lipschitz_bounds(ws, p, max_patterns=2**18)
        values["L"] = B.exact_lipschitz_1d(ws, bs)
        slide = dict(zip(("L", "K_star", "K1", "K2", "K3", "K4"), SLIDES[depth], strict=True))
        cells = []
        for c in cols:
            ref = f" [{slide[c]:g}]" if c in slide else ""
            cells.append(f"{values[c]:.6g}{ref}")
        print(f"{depth:>2} " + "".join(f"{cell:>22}" for cell in cells))
    print("exact L = 2 - 2^-l: " + ", ".join(f"{2 - 2.0**-d:g}" for d in range(1, 7)))


if __name__ == "__main__":
    main()
