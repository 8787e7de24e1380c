"""The experiment scripts: every setting is a valid config whose model builds; the tables and ratios."""

import argparse
import importlib.util
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from lipjax import export
from lipjax import layers as L
from lipjax.training import load_config
from lipjax.training.experiment import build_model

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


appendix_d = _script("appendix_d")
distance = _script("mnist_0v8_distance")


@pytest.mark.parametrize("study", sorted(appendix_d.STUDIES))
def test_every_appendix_d_setting_is_a_config_whose_model_builds(study):
    args = argparse.Namespace(data="cifar.tar.gz", train_limit=100, test_limit=50, epochs=None)
    spec = appendix_d.STUDIES[study]
    models = []
    for setting, own in spec.settings.items():
        cfg = load_config(spec.base, appendix_d.run_overrides(spec, setting, args))
        assert cfg["train_limit"] == 100 and cfg["epochs"] == spec.epochs
        assert all(o in appendix_d.run_overrides(spec, setting, args) for o in own)
        models.append(build_model(cfg, 10))
    assert len({repr(m) for m in models}) == len(models) or study in ("batch", "margin")
    if study == "step":
        steps = [m.layers[-2].layer.step for m in models]  # the dense CPL stack before the head
        assert steps == [None, 1.0, 0.1, 0.01]


def test_appendix_d_table_has_one_row_per_setting():
    rows = [
        dict(
            setting=s,
            clean=0.5,
            certified=(0.4, 0.3, 0.2),
            pgd=(0.45,),
            lipschitz=1.0,
            train_seconds=12.0,
            images_per_second=80.0,
        )
        for s in ("a", "b")
    ]
    table = appendix_d.markdown_table(appendix_d.STUDIES["step"], rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| a | 50.00 | 40.00 | 30.00 | 20.00 | 45.00 | 1 | 12 |")
    assert "PGD 0.141" in table[0] and "PGD" not in appendix_d.markdown_table(
        appendix_d.STUDIES["margin"], rows
    )


def test_distance_ratio_of_a_linear_binary_model_is_one():
    """For f(x) = <w, x> / ||w|| + b the boundary is exactly |f(x)| away: the ratio is 1."""
    model = L.Sequential([L.Flatten(), L.FrobeniusDense(1)])
    x = jax.random.uniform(jax.random.key(0), (16, 4, 4, 1), minval=0.45, maxval=0.55)
    variables = model.init(jax.random.key(1), x)
    exported = export.export(model, variables, (4, 4, 1))
    f = np.asarray(exported.apply(x)).reshape(-1)
    labels = (f > 0).astype(np.int32)
    labels[0] = 1 - labels[0]  # misclassified: left out
    r = distance.distance_ratios(exported, np.asarray(x), labels)
    assert r["ratio"].shape == (15,)
    np.testing.assert_allclose(r["ratio"], 1.0, atol=2e-3)
    assert "| linear | 15 / 15 |" in distance.summary_line("linear", r)
