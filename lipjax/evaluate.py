"""One evaluation of an exported model: clean, certified and (optionally) PGD accuracy.

:func:`evaluate` is what ``Exported.evaluate``, ``lipjax certify``, ``lipjax
attack`` and the training loop's final report call, so that every number lipjax
prints about a model comes from the same logits, radii and prediction rule.
:func:`write_curves` draws certified (solid) and PGD (dashed) accuracy against
eps for one model or several side by side (the paper's Figures 1 and 2), as PNG
and CSV.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lipjax import attacks
from lipjax.certify import predict


def certified_curve(radii: np.ndarray, correct: np.ndarray, eps: Sequence[float]) -> np.ndarray:
    """Fraction of points that are correct with a certified radius ``> eps``, for each eps."""
    radii = np.asarray(radii, np.float64)
    ok = np.asarray(correct, bool)
    return np.array([np.mean(ok & (radii > e)) for e in np.asarray(eps)])


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """Accuracy of a model on ``N`` points.

    Attributes:
      eps: the radii evaluated.
      clean_accuracy: fraction predicted correctly.
      certified_accuracy: per eps, fraction correct with certified radius ``> eps``.
      radii: ``(N,)`` certified radii with respect to the true labels (negative: misclassified).
      correct: ``(N,)`` whether each point is predicted correctly.
      pgd_accuracy: per eps, fraction still correct after PGD-l2 of that radius (None: not run).
      lipschitz: certified constant used by the radii (the body's, with a normalized head).
      precision: format of the certification forward pass (``"float64"`` or ``"float32"``).
      rounding_error: largest bound, over the points, of how far float rounding can have
        moved a logit (taken off every margin); None when some layer has no bound (the
        radii then do not account for rounding, and a warning said so).
    """

    eps: tuple[float, ...]
    clean_accuracy: float
    certified_accuracy: tuple[float, ...]
    radii: np.ndarray
    correct: np.ndarray
    pgd_accuracy: tuple[float, ...] | None = None
    lipschitz: float | None = None
    precision: str | None = None
    rounding_error: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The numbers (no per-example arrays), ready for JSON."""
        out: dict[str, Any] = {
            "examples": int(self.radii.size),
            "clean_accuracy": self.clean_accuracy,
            "certified_accuracy": {
                f"{e:g}": c for e, c in zip(self.eps, self.certified_accuracy, strict=True)
            },
        }
        if self.pgd_accuracy is not None:
            out["pgd_accuracy"] = {f"{e:g}": a for e, a in zip(self.eps, self.pgd_accuracy, strict=True)}
        if self.lipschitz is not None:
            out["lipschitz"] = self.lipschitz
        if self.precision is not None:
            out["precision"] = self.precision
            out["rounding_error"] = self.rounding_error
        return out

    def table(self) -> str:
        """Accuracy against eps, one row per eps."""
        pgd = self.pgd_accuracy is not None
        rows = [f"{'eps':>10}  {'certified':>9}" + (f"  {'PGD':>8}" if pgd else "")]
        rows.append(f"{'clean':>10}  {100 * self.clean_accuracy:8.2f}%" + (f"  {'':>8}" if pgd else ""))
        for i, e in enumerate(self.eps):
            row = f"{e:>10.4g}  {100 * self.certified_accuracy[i]:8.2f}%"
            if pgd:
                row += f"  {100 * self.pgd_accuracy[i]:7.2f}%"
            rows.append(row)
        return "\n".join(rows)


def pgd_accuracy(apply_fn, x, y, eps: float, batch_size: int = 256, **attack_kwargs) -> float:
    """Fraction of ``(x, y)`` still predicted correctly after :func:`lipjax.attacks.pgd_l2` at ``eps``."""
    correct = 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        x_adv = attacks.pgd_l2(apply_fn, xb, yb, eps, **attack_kwargs)
        correct += int(np.sum(np.asarray(predict(apply_fn(x_adv))) == np.asarray(yb)))
    return correct / max(len(y), 1)


def evaluate(
    exported,
    x: np.ndarray,
    y: np.ndarray,
    eps: Sequence[float],
    batch_size: int = 1000,
    pgd: bool = False,
    pgd_kwargs: Mapping[str, Any] | None = None,
    precision: str = "auto",
) -> EvaluationReport:
    """Clean, certified and (``pgd``) PGD-l2 accuracy of an exported model.

    Args:
      exported: a :class:`lipjax.export.Exported` model.
      x: ``(N, *input_shape)`` inputs.
      y: ``(N,)`` integer labels.
      eps: radii at which to report certified (and PGD) accuracy.
      batch_size: inputs per forward pass.
      pgd: also attack every point at every eps.
      pgd_kwargs: arguments of :func:`lipjax.attacks.pgd_l2` (default: the paper's 10 steps).
      precision: format of the certification forward pass (:func:`lipjax.rounding.certification_dtype`:
        ``"auto"`` is float64 on CPU and GPU); the bound of its rounding is taken off every margin.

    Returns:
      An :class:`EvaluationReport`.
    """
    eps = tuple(float(e) for e in np.atleast_1d(eps))
    y = np.asarray(y)
    logits, bound = exported.certified_logits(x, batch_size=batch_size, precision=precision)
    with jax.enable_x64(True) if logits.dtype == np.float64 else contextlib.nullcontext():
        correct = np.asarray(predict(logits)) == y
        radii = np.asarray(exported.certified_radius(logits, labels=y, bound=bound))
    certified = tuple(float(np.mean(radii > e)) for e in eps)
    robust = None
    if pgd:
        kwargs = {"key": jax.random.key(0), **(pgd_kwargs or {})}
        robust = tuple(
            pgd_accuracy(exported.apply, np.asarray(x), y, e, min(batch_size, 256), **kwargs) for e in eps
        )
    constant = exported.body_lipschitz if exported.has_head else exported.lipschitz
    shift = None if bound is None else bound.worst_logit_shift(head_lipschitz=_head_norm(exported))
    return EvaluationReport(
        eps,
        float(correct.mean()),
        certified,
        radii,
        correct,
        robust,
        float(constant),
        str(logits.dtype),
        shift,
    )


def _head_norm(exported) -> float:
    """Bound of ``||W_head||_2`` (1 without a head): turns the head's input error into logits."""
    return exported.layers[-1].lipschitz if exported.has_head else 1.0


def _colors(n: int) -> list[str]:
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def write_curves(
    reports: Mapping[str, EvaluationReport], path: str | Path, title: str = ""
) -> tuple[Path, Path]:
    """Certified (solid) and PGD (dashed, where measured) accuracy against eps, as PNG and CSV.

    Args:
      reports: one :class:`EvaluationReport` per model name.
      path: output path without suffix; ``.png`` and ``.csv`` are written next to it.
      title: the plot's title.

    Returns:
      ``(png path, csv path)``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not reports:
        raise ValueError("write_curves needs at least one report")
    path = Path(path)
    top = max(max(r.eps) for r in reports.values())
    grid = np.linspace(0.0, max(1.5 * top, 1e-3), 151)
    rows = []
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for (name, report), color in zip(reports.items(), _colors(len(reports)), strict=True):
        curve = certified_curve(report.radii, report.correct, grid)
        ax.plot(grid, 100 * curve, color=color, lw=2, label=f"{name} certified")
        rows += [(name, "certified", float(e), float(a)) for e, a in zip(grid, curve, strict=True)]
        if report.pgd_accuracy is not None:
            ax.plot(
                report.eps, 100 * np.asarray(report.pgd_accuracy), "o--", color=color, label=f"{name} PGD"
            )
            rows += [(name, "pgd", e, a) for e, a in zip(report.eps, report.pgd_accuracy, strict=True)]
    ax.set_xlabel("eps (l2 radius)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, float(grid[-1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(textwrap.fill(title, 70), fontsize=9)
    fig.tight_layout()
    png, table = path.with_suffix(".png"), path.with_suffix(".csv")
    fig.savefig(png)
    plt.close(fig)
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "curve", "eps", "accuracy"])
        writer.writerows(rows)
    return png, table
