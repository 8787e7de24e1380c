"""Training: schedule, configs, loop outputs, exact resume, NaN stop, sharding, CLI."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lipjax import cli
from lipjax.training import (
    Checkpointer,
    NonFiniteLossError,
    WorkdirError,
    load_config,
    make_config,
    train_and_evaluate,
    triangular_schedule,
)

TINY = dict(
    dataset="mnist",
    train_limit=256,
    test_limit=128,
    model="cpl_mnist_dense",
    model_kwargs={"depth": 2, "features": 16},
    loss="multi_margin",
    loss_kwargs={"margin": 1.0},
    batch_size=64,
    epochs=2,
    progress=False,
    plot=False,
    eval_every_epochs=0,
    log_every_steps=2,
)


def quiet(_):
    pass


def test_triangular_schedule():
    s = triangular_schedule(1e-3, 100)
    values = [float(s(t)) for t in (0, 20, 40, 60, 80, 90, 100)]
    np.testing.assert_allclose(
        values, [0, 5e-4, 1e-3, 0.5 * (1e-3 + 5e-5), 5e-5, 2.5e-5, 0], rtol=1e-5, atol=1e-9
    )


def _restore(workdir):
    from lipjax.training import build_model, create_train_state, load_datasets, make_optimizer

    cfg = make_config(json.loads((workdir / "config.json").read_text()))
    train, _ = load_datasets(cfg)
    model = build_model(cfg, train.num_classes)
    tx = make_optimizer("adam", 1e-3, 10)
    template = create_train_state(model, tx, jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32))
    ckpt = Checkpointer(workdir)
    state, _ = ckpt.restore(template)
    ckpt.close()
    return jax.device_get(state)


def test_loop_outputs_resume_is_exact_and_nan_stops(tmp_path):
    cfg = dict(
        TINY,
        augment=True,
        crop_padding=2,
        flip=False,
        plot=True,
        checkpoint_every_steps=2,
        keep_checkpoints=2,
    )
    full = train_and_evaluate(cfg, tmp_path / "full", log=quiet)
    ckpt = Checkpointer(tmp_path / "full")
    assert ckpt.all_steps() == [6, 8]  # saved every 2 steps, the last 2 kept
    # A save interrupted mid-write stays in orbax's temporary folder: never the latest.
    (ckpt.directory / "12.orbax-checkpoint-tmp-1234").mkdir()
    (ckpt.directory / "12.orbax-checkpoint-tmp-1234" / "partial").write_text("x")
    assert ckpt.latest_step() == 8
    ckpt.close()
    assert 0.0 <= full["clean_accuracy"] <= 1.0 and len(full["certified_accuracy"]) == 3
    for name in ("metrics.jsonl", "metrics.csv", "certified_accuracy.png", "model.lipjax"):
        assert (tmp_path / "full" / name).exists(), name
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kind"] == "final" and rows[-1]["step"] == 8

    # Interrupted mid-epoch (step 3 of 8), then resumed: bit-identical parameters.
    part = tmp_path / "part"
    assert train_and_evaluate(dict(cfg, stop_at_step=3), part, log=quiet) == {"stopped_at": 3}
    with pytest.raises(WorkdirError, match="--resume"):
        train_and_evaluate(cfg, part, log=quiet)
    resumed = train_and_evaluate(cfg, part, resume=True, log=quiet)
    a, b = _restore(tmp_path / "full"), _restore(part)
    assert int(a.step) == int(b.step) == 8
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(jax.tree.leaves(a.power_iteration), jax.tree.leaves(b.power_iteration), strict=True):
        np.testing.assert_array_equal(x, y)
    assert resumed["clean_accuracy"] == full["clean_accuracy"]
    resumed_rows = (part / "metrics.jsonl").read_text().splitlines()
    # The interrupted run logged its partial window at step 3; the rest is identical.
    assert [json.loads(r)["step"] for r in resumed_rows] == [2, 3, 4, 6, 8, 8]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 8]

    # A NaN learning rate makes the loss non-finite: clear error, last good checkpoint kept.
    with pytest.raises(NonFiniteLossError, match="last good checkpoint is step 8"):
        train_and_evaluate(dict(cfg, epochs=4, learning_rate=float("nan")), part, resume=True, log=quiet)
    ckpt = Checkpointer(part)
    assert ckpt.latest_step() == 8
    ckpt.close()

    # A damaged checkpoint gives a clear error naming it, not an orbax traceback.
    for path in (part / "checkpoints" / "8").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checkpoint 8 .* is corrupt"):
        train_and_evaluate(cfg, part, resume=True, log=quiet)


SHARDING_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from lipjax import data, models
    from lipjax.training import create_train_state, make_optimizer, make_train_step, make_mesh
    from lipjax.training.steps import make_loss_fn, shard_batch, replicated

    ds = data.load("mnist", "train").take(256)
    model = models.cpl_mnist_dense(depth=2, features=32)
    tx = make_optimizer("adam", 1e-3, 4)
    loss = make_loss_fn("multi_margin", {"margin": 1.0})
    out = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_mesh(devices)
        state = create_train_state(model, tx, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
        state = jax.device_put(state, replicated(mesh))
        step = make_train_step(model, tx, loss, mesh, seed=0, augment=True, crop_padding=2)
        for x, y in data.batches(ds, 64, seed=0, epoch=0):
            x, y = shard_batch(mesh, x, y)
            state, metrics = step(state, x, y)
        assert len(x.sharding.device_set) == len(devices)
        out.append(jax.device_get(state))
    one, four = out
    worst = 0.0
    for a, b in zip(jax.tree.leaves((one.params, one.power_iteration)),
                    jax.tree.leaves((four.params, four.power_iteration)), strict=True):
        worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12)))
    print("WORST", worst)
    assert worst < 1e-5, worst
    """
)


def test_sharded_step_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WORST" in proc.stdout


@pytest.mark.parametrize("name", ["mnist", "mnist_hkr_0v8", "cifar10_cpl_s", "cifar100_cpl_s"])
def test_smoke_configs_run(tmp_path, name):
    results = train_and_evaluate(load_config(f"{name}:smoke"), tmp_path, log=quiet)
    assert np.isfinite(results["clean_accuracy"])
    assert all(0.0 <= c <= results["clean_accuracy"] for c in results["certified_accuracy"])


def test_cli_train_export_certify(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    sets = ["--set", "train_limit=256", "--set", "test_limit=128", "--set", "epochs=1"]
    assert cli.main(["train", "--config", "mnist:smoke", "--workdir", workdir, *sets]) == 0
    out = capsys.readouterr().out
    assert "clean accuracy" in out and "eps=1.58" in out
    assert cli.main(["train", "--config", "mnist:smoke", "--workdir", workdir, *sets]) == 1
    assert "--resume" in capsys.readouterr().err
    exported = str(tmp_path / "exported.lipjax")
    assert cli.main(["export", "--workdir", workdir, "--out", exported]) == 0
    assert "exported step" in capsys.readouterr().out
    report = tmp_path / "certify.json"
    args = ["certify", exported, "--dataset", "mnist", "--limit", "128", "--json", str(report)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "clean" in out and "1.58" in out
    result = json.loads(report.read_text())
    assert result["examples"] == 128 and set(result["certified_accuracy"]) == {"0.5", "1", "1.58"}
    assert all(0.0 <= v <= result["clean_accuracy"] for v in result["certified_accuracy"].values())
    assert cli.main(args) == 1  # the JSON report is never overwritten
    assert "not overwriting" in capsys.readouterr().err
    assert cli.main(["train", "--config", "nope", "--workdir", workdir]) == 2
