"""CPU proxies of appendix D of Meunier et al. (2022): depth, relaxed step, batch size, margin.

Commands (each within an hour on 2 CPU cores; the CIFAR studies need the CIFAR-10 images as
an image folder or tarball, e.g. ``cifar10-jpeg.tar.gz``; results in ``experiments/RESULTS.md``)::

    python experiments/appendix_d.py depth                                # D.1, embedded MNIST
    python experiments/appendix_d.py step   --data cifar10-jpeg.tar.gz    # D.2
    python experiments/appendix_d.py batch  --data cifar10-jpeg.tar.gz    # D.3
    python experiments/appendix_d.py margin --data cifar10-jpeg.tar.gz    # D.4

Each setting is an ordinary ``lipjax train`` run (the script prints its command) in
``OUT/<study>/<setting>/``; a setting whose config matches a finished run under ``OUT``
(``results.json`` written) is read back, not retrained. The script then evaluates every
exported model on the same test images (certified accuracy with the network's own
certified constant; PGD-l2 at 36/255 for the relaxed layers, whose paper table has it) and writes
``OUT/<study>/table.md`` and ``curves.png`` / ``.csv``; ``depth`` also plots test accuracy
against epochs (the paper's Figure 3).

The proxies shrink the paper's runs to fit a CPU: the small CPL network of
``cifar10_cpl_s:proxy`` on the first ``--train-limit`` training images (classes interleaved)
for ``--epochs`` epochs, and for D.1 dense CPLs on MNIST instead of 30-map conv CPLs on CIFAR.
"""

from __future__ import annotations

import argparse
import json
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipjax import export
from lipjax.evaluate import pgd_accuracy, write_curves
from lipjax.training import load_config, load_datasets, train_and_evaluate

CIFAR_EPS = (36 / 255, 72 / 255, 108 / 255)
MNIST_EPS = (0.5, 1.0, 1.58)


@dataclass(frozen=True)
class Study:
    """One appendix-D experiment: a base config and one list of overrides per setting."""

    section: str
    title: str
    base: str
    settings: dict[str, tuple[str, ...]]
    eps: tuple[float, ...] = CIFAR_EPS
    epochs: int = 1
    pgd_eps: tuple[float, ...] = ()
    needs_data: bool = True
    base_overrides: tuple[str, ...] = field(default=())


STUDIES: dict[str, Study] = {
    "depth": Study(
        "D.1",
        "Training stability with depth: dense CPLs of 64 hidden units on MNIST, no normalisation tricks",
        "mnist",
        {f"depth={d}": (f"model_kwargs.depth={d}",) for d in (10, 100, 1000)},
        eps=MNIST_EPS,
        epochs=3,
        needs_data=False,
        base_overrides=("model_kwargs.features=64", "batch_size=128", "eval_every_epochs=1"),
    ),
    "step": Study(
        "D.2",
        "Relaxed layers: a fixed step h in every CPL instead of h = 2 / ||W||^2",
        "cifar10_cpl_s:proxy",
        {
            "normalised": (),
            "h=1.0": ("model_kwargs.step=1.0",),
            "h=0.1": ("model_kwargs.step=0.1",),
            "h=0.01": ("model_kwargs.step=0.01",),
        },
        pgd_eps=(36 / 255,),  # the paper's D.2 table: clean and PGD at 36/255
    ),
    "batch": Study(
        "D.3",
        "Batch size",
        "cifar10_cpl_s:proxy",
        {f"batch={b}": (f"batch_size={b}",) for b in (64, 128, 256)},
    ),
    "margin": Study(
        "D.4",
        "Margin of the multi-class hinge loss",
        "cifar10_cpl_s:proxy",
        {f"margin={m}": (f"loss_kwargs.margin={m}",) for m in (0.1, 0.35, 0.7, 1.4)},
    ),
}


def run_overrides(study: Study, setting: str, args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of one setting: the proxy's size, then the setting's own."""
    epochs = args.epochs or study.epochs
    size = [f"train_limit={args.train_limit}", f"test_limit={args.test_limit}", f"epochs={epochs}"]
    data = [f"data_path={args.data}"] if study.needs_data else []
    return [*data, *size, "plot=False", *study.base_overrides, *study.settings[setting]]


def _plain(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def finished_run_of(cfg: dict, root: Path) -> Path | None:
    """A finished run under ``root`` (any study) trained with exactly this config."""
    for config_file in sorted(root.glob("*/*/config.json")):
        run = config_file.parent
        if (run / "results.json").exists() and _plain(json.loads(config_file.read_text())) == _plain(cfg):
            return run
    return None


def train_setting(study: Study, setting: str, workdir: Path, args: argparse.Namespace) -> tuple[dict, Path]:
    """Trains one setting, or reads the results of a finished run with the same config
    (the base setting is shared by the CIFAR studies). Returns the results and the run folder."""
    overrides = run_overrides(study, setting, args)
    cfg = json.loads(_plain(load_config(study.base, overrides)))  # as config.json stores it
    done = finished_run_of(cfg, Path(args.out))
    if done is not None:
        print(f"[{setting}] reading the finished run {done}")
        return json.loads((done / "results.json").read_text()), done
    command = ["lipjax", "train", "--config", study.base, "--workdir", str(workdir)]
    print(f"[{setting}] {shlex.join([*command, *(a for o in overrides for a in ('--set', o))])}")
    return train_and_evaluate(load_config(study.base, overrides), workdir), workdir


def test_accuracy_by_epoch(workdir: Path) -> list[tuple[int, float]]:
    """``(epoch, clean accuracy)`` of the per-epoch evaluations and the final one."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    epochs = json.loads((workdir / "config.json").read_text())["epochs"]
    return [(r["epoch"], r["clean_accuracy"]) for r in rows if r.get("kind") == "eval"] + [
        (epochs, r["clean_accuracy"]) for r in rows if r.get("kind") == "final"
    ]


def markdown_table(study: Study, rows: list[dict]) -> str:
    eps_names = [f"{e:.3g}" for e in study.eps]
    head = ["setting", "clean", *(f"cert {e}" for e in eps_names)]
    head += [f"PGD {e:.3g}" for e in study.pgd_eps]
    head += ["certified L (body)", "train s", "images/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        accuracies = (*r["certified"], *r["pgd"])
        cells = [r["setting"], f"{100 * r['clean']:.2f}", *(f"{100 * a:.2f}" for a in accuracies)]
        cells += [f"{r['lipschitz']:.4g}", f"{r['train_seconds']:.0f}", f"{r['images_per_second']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_accuracy_by_epoch(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, points in curves.items():
        if points:
            epochs, acc = zip(*points, strict=True)
            ax.plot(epochs, 100 * np.asarray(acc), "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title, 70), fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_study(name: str, args: argparse.Namespace) -> Path:
    study = STUDIES[name]
    if study.needs_data and not args.data:
        raise SystemExit(
            f"the {name!r} study trains on CIFAR-10: pass --data PATH (an image folder or tarball)"
        )
    out = Path(args.out) / name
    rows, reports, by_epoch = [], {}, {}
    test = None
    for setting in study.settings:
        results, workdir = train_setting(study, setting, out / setting.replace("=", "_"), args)
        if test is None:  # the same test images for every setting
            test = load_datasets(load_config(study.base, run_overrides(study, setting, args)))[1]
        exported = export.load(workdir / "model.lipjax")
        x = test.float_images()
        report = exported.evaluate(x, test.labels, study.eps)
        n = args.pgd_limit
        pgd = tuple(pgd_accuracy(exported.apply, x[:n], test.labels[:n], e) for e in study.pgd_eps)
        reports[setting] = report
        by_epoch[setting] = test_accuracy_by_epoch(workdir)
        rows.append(
            dict(
                setting=setting,
                clean=report.clean_accuracy,
                certified=report.certified_accuracy,
                pgd=pgd,
                lipschitz=report.lipschitz,  # the body's, with a normalized head
                train_seconds=results["train_seconds"],
                images_per_second=results["train_images_per_second"] or float("nan"),
            )
        )
        print(report.table())
    table = markdown_table(study, rows)
    title = f"{study.section} proxy: {study.title}"
    attack = (
        f"PGD-l2 on the first {args.pgd_limit}: 10 steps, step 2 eps / 10, random start (Figure 2); "
        if study.pgd_eps
        else ""
    )
    note = (
        f"{title}\n\n{len(test)} test images; {attack}train: {args.train_limit} images, "
        f"{args.epochs or study.epochs} epoch(s).\n\n"
    )
    (out / "table.md").write_text(note + table + "\n")
    write_curves(reports, out / "curves", title=title)
    if name == "depth":
        plot_accuracy_by_epoch(by_epoch, out / "accuracy_by_epoch.png", title)
    print(note + table)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", choices=sorted(STUDIES), nargs="+")
    parser.add_argument("--data", help="CIFAR-10 image folder or tarball (<split>/<class>/<file>)")
    parser.add_argument("--out", default="runs/appendix_d")
    parser.add_argument("--train-limit", type=int, default=10_000)
    parser.add_argument("--test-limit", type=int, default=2_000)
    parser.add_argument("--pgd-limit", type=int, default=500, help="test images attacked by PGD")
    parser.add_argument("--epochs", type=int, help="default: 3 for depth, 1 for the others")
    args = parser.parse_args(argv)
    for name in args.study:
        run_study(name, args)


if __name__ == "__main__":
    main()
