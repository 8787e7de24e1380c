"""``lipjax attack`` and ``lipjax audit`` on a small exported MNIST model."""

import json

import jax
import pytest

from lipjax import cli, export, layers, models


@pytest.fixture(scope="module")
def exported_mnist(tmp_path_factory):
    model = models.cpl_mnist_dense(num_classes=10, depth=2, features=64, head="lln")
    x = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1))
    variables = model.init(jax.random.key(1), x)
    for _ in range(10):
        _, updates = model.apply(variables, x, update_stats=True, mutable=[layers.POWER_ITERATION])
        variables = {**variables, **updates}
    path = tmp_path_factory.mktemp("attack") / "model.lipjax"
    export.save(path, export.export(model, variables, input_shape=(28, 28, 1)))
    return str(path)


def test_attack_reports_pgd_between_certified_and_clean(exported_mnist, tmp_path):
    out = tmp_path / "attack.json"
    args = ["attack", exported_mnist, "--dataset", "mnist", "--limit", "64", "--eps", "0.05,0.2"]
    assert cli.main([*args, "--json", str(out), "--plot", str(tmp_path / "curves")]) == 0
    result = json.loads(out.read_text())
    assert result["examples"] == 64 and result["attack"]["steps"] == 10
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "curves.csv").stat().st_size > 0
    for eps in ("0.05", "0.2"):
        # A sound certificate is never broken: certified <= PGD accuracy <= clean accuracy.
        assert result["certified_accuracy"][eps] <= result["pgd_accuracy"][eps] <= result["clean_accuracy"]
    assert cli.main([*args, "--json", str(out)]) == 1  # never overwritten


def test_audit_finds_no_violation_and_writes_its_report(exported_mnist, tmp_path, capsys):
    out = tmp_path / "audit.json"
    args = [
        "audit",
        exported_mnist,
        "--dataset",
        "mnist",
        "--limit",
        "32",
        "--steps",
        "10",
        "--restarts",
        "1",
    ]
    assert cli.main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["violations"] == 0 and report["examples"] == 32
    assert "0 violations" in capsys.readouterr().out


def test_attack_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["attack", str(tmp_path / "missing.lipjax"), "--dataset", "mnist"]) == 1
    assert "lipjax attack: error:" in capsys.readouterr().err
    assert cli.main(["audit", "--dataset", "mnist"]) == 1
    assert "give an EXPORT file" in capsys.readouterr().err
