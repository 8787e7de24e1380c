"""Training: schedule, loop outputs, num_train_steps, exact resume, NaN stops, sharding, CLI."""

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


FULL = dict(
    TINY,
    augment=True,
    crop_padding=2,
    flip=False,
    plot=True,
    checkpoint_every_steps=2,
    keep_checkpoints=2,
)


def _restore(workdir):
    """The train state of the latest checkpoint of ``workdir``, through lipjax's own classes."""
    from lipjax.training import experiment_for, load_datasets

    cfg = make_config(json.loads((workdir / "config.json").read_text()))
    experiment = experiment_for(cfg, load_datasets(cfg)[0])
    ckpt = Checkpointer(workdir)
    state, record = ckpt.restore(experiment.init_state())
    ckpt.close()
    return jax.device_get(state), record


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    return workdir, train_and_evaluate(FULL, workdir, log=quiet)


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """FULL stopped by ``num_train_steps`` at step 3 (mid-epoch), then resumed to the end."""
    workdir = tmp_path_factory.mktemp("part")
    stopped = train_and_evaluate(dict(FULL, num_train_steps=3), workdir, log=quiet)
    stopped_rows = _rows(workdir)
    with pytest.raises(WorkdirError, match="--resume"):
        train_and_evaluate(FULL, workdir, log=quiet)
    resumed = train_and_evaluate(FULL, workdir, resume=True, log=quiet)
    return workdir, stopped, stopped_rows, resumed


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_checkpoints_every_n_steps_and_interrupted_saves_ignored(full_run):
    workdir, _ = full_run
    ckpt = Checkpointer(workdir)
    assert ckpt.all_steps() == [6, 8]  # saved every 2 steps, the last 2 kept
    # A save interrupted mid-write stays in orbax's temporary folder: never the latest.
    (ckpt.directory / "12.orbax-checkpoint-tmp-1234").mkdir()
    (ckpt.directory / "12.orbax-checkpoint-tmp-1234" / "partial").write_text("x")
    assert ckpt.latest_step() == 8
    ckpt.close()


def test_run_writes_its_outputs(full_run):
    workdir, full = full_run
    assert 0.0 <= full["clean_accuracy"] <= 1.0 and len(full["certified_accuracy"]) == 3
    for name in ("metrics.jsonl", "metrics.csv", "certified_accuracy.png", "model.lipjax", "results.json"):
        assert (workdir / name).exists(), name
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 8]
    assert rows[-1]["kind"] == "final" and rows[-1]["body_lipschitz"] == full["body_lipschitz"]
    assert json.loads((workdir / "results.json").read_text())["steps"] == 8


def test_logged_learning_rate_is_the_schedule_at_the_step(full_run):
    workdir, _ = full_run
    rows = [r for r in _rows(workdir) if r["kind"] == "train"]
    schedule = triangular_schedule(make_config(FULL)["learning_rate"], 8)
    # the rate of the update that produced step s is the schedule at optimizer count s - 1
    np.testing.assert_allclose([r["lr"] for r in rows], [float(schedule(r["step"] - 1)) for r in rows])
    assert rows[0]["lr"] > 0
    seconds = [r["seconds"] for r in rows]
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:], strict=False)), seconds


def test_num_train_steps_stops_early_keeping_the_schedule(resumed_run):
    workdir, stopped, stopped_rows, _ = resumed_run
    assert stopped["steps"] == 3 and 0.0 <= stopped["clean_accuracy"] <= 1.0
    assert [(r["step"], r["kind"]) for r in stopped_rows] == [(2, "train"), (3, "train"), (3, "final")]
    # the schedule spans the 2 configured epochs (8 steps), not the 3 steps run
    assert stopped_rows[1]["lr"] == pytest.approx(float(triangular_schedule(1e-3, 8)(2)))
    with pytest.raises(ValueError, match="num_train_steps=9 must lie in"):
        train_and_evaluate(dict(FULL, num_train_steps=9), workdir / "bad", log=quiet)


def test_resume_is_bit_exact(full_run, resumed_run):
    (full_dir, full), (part, _, _, resumed) = full_run, resumed_run
    (a, record_a), (b, record_b) = _restore(full_dir), _restore(part)
    assert int(a.step) == int(b.step) == 8 and record_a["step"] == record_b["step"] == 8
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):  # params, power it., Adam
        np.testing.assert_array_equal(x, y)
    assert resumed["clean_accuracy"] == full["clean_accuracy"]
    # The interrupted run's partial window at step 3 stays; its "final" row does not.
    assert [r["step"] for r in _rows(part)] == [2, 3, 4, 6, 8, 8]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train_and_evaluate(dict(TINY, num_train_steps=2), tmp_path, log=quiet)
    message = "non-finite grad_norm, loss .* last good checkpoint is step 2"
    with pytest.raises(NonFiniteLossError, match=message):
        train_and_evaluate(dict(TINY, epochs=4, learning_rate=float("nan")), tmp_path, resume=True, log=quiet)
    ckpt = Checkpointer(tmp_path)
    assert ckpt.latest_step() == 2
    ckpt.close()


def test_nan_parameters_are_reported_as_the_parameter_norm(tmp_path):
    # Step 1's loss and gradient are finite; its update makes every parameter NaN.
    cfg = dict(TINY, learning_rate=float("nan"), checkpoint_every_steps=1, log_every_steps=100)
    with pytest.raises(NonFiniteLossError) as err:
        train_and_evaluate(cfg, tmp_path, log=quiet)
    assert "non-finite param_norm (nan) at step 1" in str(err.value)
    assert "grad_norm" not in str(err.value) and "no checkpoint was saved" in str(err.value)


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    train_and_evaluate(dict(TINY, num_train_steps=2), tmp_path, log=quiet)
    for path in (tmp_path / "checkpoints" / "2").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checkpoint 2 .* is corrupt"):
        train_and_evaluate(TINY, tmp_path, resume=True, log=quiet)


SHARDING_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from lipjax import data, models
    from lipjax.training import experiment_for, make_config, make_mesh
    from lipjax.training.steps import shard_batch, replicated

    ds = data.load("mnist", "train").take(256)
    cfg = make_config(
        model_kwargs={"depth": 2, "features": 32}, loss_kwargs={"margin": 1.0}, batch_size=64,
        epochs=1, augment=True, crop_padding=2,
    )
    experiment = experiment_for(cfg, ds)
    out = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_mesh(devices)
        state = jax.device_put(experiment.init_state(), replicated(mesh))
        step = experiment.train_step(mesh)
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
    # 4 CPU devices, also on a machine with a GPU (where JAX would otherwise take the GPU alone)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
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


@pytest.mark.parametrize(
    "name, statement",
    [
        ("mnist", "of the body L = 1.000"),  # LLN head: the body's constant and the pairwise formula
        ("mnist_hkr_0v8", "(radius r = |f| / L)"),  # one logit
        ("mnist_deel_lip", "the normalized head enters through the pairwise formula"),  # as cifar100_cpl_s
        ("cifar10_cpl_s", "(radius r = (f_y - max_j f_j) / (sqrt(2) L))"),  # truncation head
    ],
)
def test_smoke_configs_run(tmp_path, name, statement):
    lines = []
    results = train_and_evaluate(load_config(f"{name}:smoke"), tmp_path, log=lines.append)
    assert np.isfinite(results["clean_accuracy"])
    assert all(0.0 <= c <= results["clean_accuracy"] for c in results["certified_accuracy"])
    assert any(statement in line for line in lines), lines


def test_cli_train_export_certify(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    sets = ["--set", "train_limit=256", "--set", "test_limit=128", "--set", "epochs=1"]
    assert cli.main(["train", "--config", "mnist:smoke", "--workdir", workdir, *sets]) == 0
    out = capsys.readouterr().out
    assert "clean accuracy" in out and "eps=1.58" in out
    # the body is 1-Lipschitz; the LLN head's constant is not what certifies the network
    assert "certified Lipschitz constant of the body L = 1.000" in out
    assert "min_j (f_y - f_j) / (L ||w_y - w_j||)" in out
    assert cli.main(["train", "--config", "mnist:smoke", "--workdir", workdir, *sets]) == 1
    assert "--resume" in capsys.readouterr().err
    exported = str(tmp_path / "exported.lipjax")
    assert cli.main(["export", "--workdir", workdir, "--out", exported]) == 0
    out = capsys.readouterr().out
    assert "exported step" in out and "of the body L = 1.000" in out
    report = tmp_path / "certify.json"
    args = ["certify", exported, "--dataset", "mnist", "--limit", "128", "--json", str(report)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "clean" in out and "1.58" in out and "of the body L = 1.000" in out
    result = json.loads(report.read_text())
    assert result["examples"] == 128 and set(result["certified_accuracy"]) == {"0.5", "1", "1.58"}
    assert all(0.0 <= v <= result["clean_accuracy"] for v in result["certified_accuracy"].values())
    assert cli.main(args) == 1  # the JSON report is never overwritten
    assert "not overwriting" in capsys.readouterr().err
    assert cli.main(["train", "--config", "nope", "--workdir", workdir]) == 2
