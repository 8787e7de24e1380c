"""Evaluation of a training run: export, certify, and the final report (results, plot)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lipjax import data as data_lib
from lipjax.evaluate import certified_curve
from lipjax.training.plot import plot_certified_accuracy


def dataset_eps(cfg: dict[str, Any]) -> tuple[float, ...]:
    """The config's ``eps``, else the dataset's standard values."""
    if cfg["eps"] is not None:
        return tuple(float(e) for e in cfg["eps"])
    info = data_lib.DATASETS.get(cfg["dataset"])
    return info.eps if info else (0.1, 0.5, 1.0)


def export_and_certify(
    model,
    variables: dict[str, Any],
    test: data_lib.Dataset,
    eps: tuple[float, ...],
    batch_size: int = 1000,
    with_radii: bool = False,
) -> dict[str, Any]:
    """Exports the model and certifies it on ``test`` through the exported model.

    Returns clean accuracy, certified accuracy at each eps, the certified
    constants (``lipschitz`` of the whole network, ``body_lipschitz`` without a
    normalized head), the exported model and (``with_radii``) per-example
    certified radii and correctness.
    """
    from lipjax import export as export_lib

    exported = export_lib.export(model, variables, test.image_shape)
    report = exported.evaluate(test.float_images(), test.labels, eps, batch_size=batch_size)
    out = {
        "clean_accuracy": report.clean_accuracy,
        "certified_accuracy": list(report.certified_accuracy),
        "eps": list(report.eps),
        "lipschitz": float(exported.lipschitz),
        "body_lipschitz": float(exported.body_lipschitz),
        "exported": exported,
    }
    if with_radii:
        out["radii"] = report.radii
        out["correct"] = report.correct
    return out


def format_eval(res: dict[str, Any]) -> str:
    parts = [f"clean {100 * res['clean_accuracy']:.2f}%"]
    parts += [
        f"cert@{e:.3g} {100 * c:.2f}%" for e, c in zip(res["eps"], res["certified_accuracy"], strict=True)
    ]
    return ", ".join(parts)


def final_report(
    cfg: dict[str, Any],
    workdir: Path,
    res: dict[str, Any],
    results: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Saves ``model.lipjax``, the plot and ``results.json``, and prints the summary.

    Args:
      cfg: the run's config.
      workdir: the run's folder.
      res: :func:`export_and_certify` of the final model, with radii.
      results: the run's numbers so far (steps, times, test size); completed and returned.
      log: where the summary lines go.
    """
    from lipjax import export as export_lib
    from lipjax.commands.report import lipschitz_statement

    exported = res["exported"]
    export_lib.save(workdir / "model.lipjax", exported, overwrite=True)
    results.update(
        clean_accuracy=res["clean_accuracy"],
        eps=res["eps"],
        certified_accuracy=res["certified_accuracy"],
        lipschitz=res["lipschitz"],
        body_lipschitz=res["body_lipschitz"],
        normalized_head=bool(exported.has_head),
        model_path=str(workdir / "model.lipjax"),
    )
    if cfg["plot"]:
        eps = res["eps"]
        grid = np.linspace(0.0, max(max(eps) * 1.5, 1e-3), 200)
        results["plot_path"] = str(
            plot_certified_accuracy(
                workdir / "certified_accuracy.png",
                grid,
                certified_curve(res["radii"], res["correct"], grid),
                marks=eps,
                mark_values=res["certified_accuracy"],
                title=f"{cfg['name']}: certified accuracy ({results['test_images']} test images)",
            )
        )
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"clean accuracy: {100 * res['clean_accuracy']:.2f}% ({results['test_images']} test images)")
    for e, c in zip(res["eps"], res["certified_accuracy"], strict=True):
        log(f"certified accuracy at eps={e:.4g}: {100 * c:.2f}%")
    log(lipschitz_statement(exported))
    log(
        f"time: {results['total_seconds']:.0f} s in all (training {results['train_seconds']:.0f} s, "
        f"first step {results['time_to_first_step'] or 0:.1f} s, certification "
        f"{results['certify_seconds']:.1f} s)"
    )
    if "plot_path" in results:
        log(f"plot: {results['plot_path']}")
    return results
