"""One evaluation report and its curves (PNG + CSV)."""

import csv

import jax
import numpy as np
import pytest

from lipjax import evaluate, export, layers, models

N, D, C = 48, 10, 3


@pytest.fixture(scope="module")
def two_models():
    x = jax.random.uniform(jax.random.key(0), (N, D))
    out = {}
    for name, features in (("narrow", 8), ("wide", 32)):
        model = models.cpl_mnist_dense(num_classes=C, depth=2, features=features, head="lln")
        variables = model.init(jax.random.key(features), x)
        for _ in range(10):
            _, updates = model.apply(variables, x, update_stats=True, mutable=[layers.POWER_ITERATION])
            variables = {**variables, **updates}
        out[name] = export.export(model, variables, input_shape=(D,))
    labels = np.asarray(out["wide"].apply(x)).argmax(-1)  # the wide model is right on every point
    return out, np.asarray(x), labels


def test_report_orders_certified_pgd_and_clean(two_models):
    exported, x, y = two_models
    report = exported["wide"].evaluate(x, y, eps=[0.0, 0.01, 0.05], pgd=True)
    assert report.clean_accuracy == 1.0 and report.correct.all()
    assert report.lipschitz == pytest.approx(exported["wide"].body_lipschitz)
    for cert, robust in zip(report.certified_accuracy, report.pgd_accuracy, strict=True):
        assert cert <= robust <= report.clean_accuracy
    np.testing.assert_allclose(
        report.certified_accuracy, evaluate.certified_curve(report.radii, report.correct, report.eps)
    )
    as_dict = report.as_dict()
    assert as_dict["examples"] == N and set(as_dict["pgd_accuracy"]) == {"0", "0.01", "0.05"}
    assert "PGD" in report.table() and "clean" in report.table()


def test_curves_of_two_models_are_written_as_png_and_csv(two_models, tmp_path):
    exported, x, y = two_models
    reports = {
        name: model.evaluate(x, y, eps=[0.01, 0.03], pgd=name == "wide") for name, model in exported.items()
    }
    png, table = evaluate.write_curves(reports, tmp_path / "curves", title="two models")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert {(r["model"], r["curve"]) for r in rows} == {
        ("narrow", "certified"),
        ("wide", "certified"),
        ("wide", "pgd"),
    }
    wide = [float(r["accuracy"]) for r in rows if r["model"] == "wide" and r["curve"] == "certified"]
    assert wide[0] == 1.0 and all(
        a >= b for a, b in zip(wide, wide[1:], strict=False)
    )  # non-increasing in eps
    with pytest.raises(ValueError, match="at least one report"):
        evaluate.write_curves({}, tmp_path / "none")
