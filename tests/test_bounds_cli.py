"""The ``lipjax bounds`` command and the Flax parameter ordering it shares with lipjax.bounds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lipjax import bounds as B
from lipjax.cli import main

TOL = 1 + 1e-9


def test_cli_table_and_json(tmp_path, capsys):
    rng = np.random.default_rng(13)
    path = tmp_path / "net.npz"
    shapes = [(5, 3), (4, 5), (2, 4)]
    np.savez(path, **{f"W{r}": rng.normal(size=s) for r, s in enumerate(shapes)})
    out_json = tmp_path / "out.json"
    code = main(
        ["bounds", str(path), "--norm", "inf", "--json", str(out_json), "--starts", "8"] + ["--steps", "20"]
    )
    assert code == 0
    text = capsys.readouterr().out
    for name in ("K_star", "K1", "K3", "K4", "K5", "lower", "Lipschitz constant in"):
        assert name in text
    result = json.loads(out_json.read_text())
    ws = [np.load(path)[f"W{r}"] for r in range(3)]
    assert result["bounds"]["K5"] == pytest.approx(B.k5(ws, math.inf))
    assert result["lower"] <= result["bounds"]["K"] * TOL


def test_cli_errors(tmp_path, capsys):
    assert main(["bounds", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "gap.npz"
    np.savez(path, W0=np.ones((2, 2)), W2=np.ones((1, 2)))
    assert main(["bounds", str(path), "--no-lower"]) == 2
    assert "missing ['W1']" in capsys.readouterr().err
    path = tmp_path / "bad.npz"
    np.savez(path, W0=np.ones((2, 2)), W1=np.ones((1, 3)))
    assert main(["bounds", str(path), "--no-lower"]) == 2
    assert "W1 has 3 columns but W0 has 2 rows" in capsys.readouterr().err
    path = tmp_path / "nokeys.npz"
    np.savez(path, foo=np.ones(2))
    assert main(["bounds", str(path)]) == 2
    assert "no weight keys" in capsys.readouterr().err


def test_dense_layers_order_is_numeric():
    params = {f"Dense_{i}": {"kernel": np.ones((2, 2)), "bias": np.full(2, i)} for i in (10, 2, 0, 1)}
    assert [name for name, _ in B.dense_layers({"params": params})] == [
        "Dense_0",
        "Dense_1",
        "Dense_2",
        "Dense_10",
    ]
    assert [b[0] for b in B.biases_from_dense_params(params)] == [0, 1, 2, 10]


def test_cli_flax_npz_pairs_biases_with_their_weights(tmp_path, capsys):
    """Layer names whose digits sort differently from their suffix (``h2_0`` comes first)."""
    from lipjax.commands.bounds import load_npz

    rng = np.random.default_rng(15)
    layers = {"h2_0": (3, 4), "h1_1": (4, 2)}  # in x out; network order h2_0, h1_1
    arrays = {}
    for name, (n_in, n_out) in layers.items():
        arrays[f"params/{name}/kernel"] = rng.normal(size=(n_in, n_out))
        arrays[f"params/{name}/bias"] = rng.normal(size=n_out)
    path = tmp_path / "flax.npz"
    np.savez(path, **arrays)
    weights, biases = load_npz(str(path))
    for w, name in zip(weights, layers, strict=True):
        np.testing.assert_array_equal(w, arrays[f"params/{name}/kernel"].T)
    for b, name in zip(biases, layers, strict=True):
        np.testing.assert_array_equal(b, arrays[f"params/{name}/bias"])
    assert main(["bounds", str(path), "--starts", "4", "--steps", "5"]) == 0
    assert "Lipschitz constant in" in capsys.readouterr().out


def test_cli_flax_dense_npz(tmp_path, capsys):
    rng = np.random.default_rng(14)
    path = tmp_path / "flax.npz"
    k0, k1 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))  # in x out
    np.savez(
        path,
        **{
            "params/Dense_0/kernel": k0,
            "params/Dense_0/bias": np.zeros(4),
            "params/Dense_1/kernel": k1,
            "params/Dense_1/bias": np.zeros(2),
        },
    )
    assert main(["bounds", str(path), "--norm", "1", "--no-lower"]) == 0
    out = capsys.readouterr().out
    assert "3 -> 4 -> 2" in out
