"""deel-lip's MNIST 0-vs-8 claim: for an HKR-trained 1-Lipschitz network, ||x - adv(x)|| ~ |f(x)|.

Command (embedded MNIST, no download; about two minutes on 2 CPU cores)::

    python experiments/mnist_0v8_distance.py --out runs/mnist_0v8_distance

Trains the ``mnist_hkr_0v8`` config twice, with the HKR loss and with the binary
cross-entropy (the two 1-Lipschitz networks of Serrurier et al.'s slides), unless their
run folders already hold ``results.json``. For every correctly classified test image it
finds a close adversarial example with :func:`lipjax.attacks.min_distance_binary`
(DeepFool, then bisection to the boundary) and reports the ratio
``||x - adv(x)|| * L / |f(x)|``, which certification guarantees to be at least 1 and which
the claim says is close to 1. Writes ``ratios.csv``, ``ratios.png`` (the distributions)
and ``examples.png`` (images, their adversarial examples and the difference).
"""

from __future__ import annotations

import argparse
import csv
import shlex
from pathlib import Path

import numpy as np

from lipjax import attacks, export
from lipjax.training import load_config, load_datasets, train_and_evaluate

LOSSES = {"HKR": ("loss=hkr",), "BCE": ("loss=binary_cross_entropy", "loss_kwargs={}")}
QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


def train(name: str, out: Path, extra: list[str]) -> Path:
    """Trains ``mnist_hkr_0v8`` with the loss ``name`` (or reuses an earlier run)."""
    workdir = out / name.lower()
    overrides = ["plot=False", *LOSSES[name], *extra]
    if not (workdir / "results.json").exists():
        sets = " ".join(f"--set {shlex.quote(o)}" for o in overrides)
        print(f"[{name}] lipjax train --config mnist_hkr_0v8 --workdir {workdir} {sets}")
        train_and_evaluate(load_config("mnist_hkr_0v8", overrides), workdir)
    return workdir / "model.lipjax"


def distance_ratios(model: export.Exported, x: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boundary distances of the correctly classified inputs, and their ratio to the certified radius."""
    f = np.asarray(model.apply(x)).reshape(-1)
    keep = (f > 0) == (labels == 1)
    x, f = x[keep], f[keep]
    adv, dist = attacks.min_distance_binary(model.apply, x, clip=(0.0, 1.0))
    dist = np.asarray(dist)
    radius = np.abs(f) / float(model.lipschitz)
    return dict(x=x, adv=np.asarray(adv), distance=dist, radius=radius, ratio=dist / radius)


def summary_line(name: str, r: dict[str, np.ndarray]) -> str:
    found = np.isfinite(r["ratio"])
    q = np.quantile(r["ratio"][found], QUANTILES)
    return (
        f"| {name} | {found.sum()} / {found.size} | "
        + " | ".join(f"{v:.3f}" for v in q)
        + f" | {100 * np.mean(r['ratio'][found] < 1.1):.1f}% | {np.median(r['radius']):.3f} |"
    )


def plot_ratios(results: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    finite = {name: r["ratio"][np.isfinite(r["ratio"])] for name, r in results.items()}
    # One set of bins for every loss, so that the bars compare; the axis ends at the largest ratio.
    upper = max([1.1] + [float(ratio.max()) * 1.02 for ratio in finite.values() if ratio.size])
    bins = np.linspace(1.0, upper, 60)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, ratio in finite.items():
        ax.hist(ratio, bins=bins, alpha=0.6, label=name)
    ax.set_xlabel("||x - adv(x)|| * L / |f(x)|  (>= 1 by certification)")
    ax.set_ylabel("test images")
    ax.legend()
    ax.set_title("MNIST 0 vs 8: adversarial distance over certified radius", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_examples(results: dict[str, dict[str, np.ndarray]], path: Path, count: int = 5) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [(name, kind) for name in results for kind in ("input", "adversarial", "difference")]
    fig, axes = plt.subplots(len(rows), count, figsize=(1.4 * count, 1.5 * len(rows)), dpi=100)
    for row, (name, kind) in enumerate(rows):
        r = results[name]
        for col in range(count):
            image = {"input": r["x"], "adversarial": r["adv"], "difference": r["adv"] - r["x"]}[kind][col]
            ax = axes[row, col]
            if kind == "difference":  # white is no change, whatever the sign
                v = float(np.abs(image).max()) or 1.0
                ax.imshow(image[..., 0], cmap="RdBu", vmin=-v, vmax=v)
            else:
                ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{name}\n{kind}", fontsize=7)
            if kind == "adversarial":
                ax.set_title(f"d={r['distance'][col]:.2f}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/mnist_0v8_distance")
    parser.add_argument("--limit", type=int, help="test images to attack (default: all)")
    parser.add_argument("--set", action="append", default=[], help="extra config override, key=value")
    args = parser.parse_args(argv)
    out = Path(args.out)
    test = load_datasets(load_config("mnist_hkr_0v8", args.set))[1]
    x, labels = test.float_images()[: args.limit], test.labels[: args.limit]
    results = {}
    for name in LOSSES:
        model = export.load(train(name, out, args.set))
        results[name] = distance_ratios(model, x, labels)
    header = "| loss | flipped / correct | " + " | ".join(f"ratio q{int(100 * q)}" for q in QUANTILES)
    lines = [header + " | ratio < 1.1 | median radius |", "|" + "---|" * (len(QUANTILES) + 4)]
    lines += [summary_line(name, r) for name, r in results.items()]
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    with open(out / "ratios.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["loss", "distance", "certified_radius", "ratio"])
        for name, r in results.items():
            columns = zip(r["distance"], r["radius"], r["ratio"], strict=True)
            writer.writerows((name, d, c, q) for d, c, q in columns)
    plot_ratios(results, out / "ratios.png")
    plot_examples(results, out / "examples.png")
    print(table)


if __name__ == "__main__":
    main()
