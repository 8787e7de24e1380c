"""Plot of certified accuracy against eps (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_certified_accuracy(
    path: str | Path,
    eps_grid: np.ndarray,
    accuracy: np.ndarray,
    marks: Sequence[float] = (),
    title: str = "",
    mark_values: Sequence[float] | None = None,
) -> Path:
    """Saves the curve ``accuracy(eps_grid)`` with the standard eps values marked.

    ``mark_values`` (the certified accuracies exactly at ``marks``) label the marks;
    without them the curve is interpolated.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    ax.plot(eps_grid, 100 * np.asarray(accuracy), lw=2)
    values = mark_values if mark_values is not None else [np.interp(e, eps_grid, accuracy) for e in marks]
    for e, a in zip(marks, values, strict=True):
        ax.axvline(e, color="grey", lw=0.8, ls=":")
        ax.annotate(f"{100 * a:.1f}%", (e, 100 * a), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("eps (l2 radius)")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(0, float(eps_grid[-1]))
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
