"""lipjax's Checkpointer and ``lipjax export --workdir`` from a checkpoint alone."""

import shutil

import jax
import numpy as np
import pytest

from lipjax import data as data_lib
from lipjax import export as export_lib
from lipjax.commands.export import export_checkpoint
from lipjax.training import Checkpointer, experiment_for, make_config, make_mesh, train_and_evaluate
from lipjax.training.steps import replicated, shard_batch

TINY = dict(
    train_limit=256,
    test_limit=128,
    model_kwargs={"depth": 2, "features": 16, "head": "lln"},
    loss="lln_margin",
    loss_kwargs={"margin": 1.0},
    batch_size=64,
    epochs=1,
    progress=False,
    plot=False,
    eval_every_epochs=0,
)


def _trained_state(cfg, steps=3):
    ds = data_lib.load("mnist", "train").take(256)
    experiment = experiment_for(cfg, ds)
    mesh = make_mesh(jax.devices()[:1])
    state = jax.device_put(experiment.init_state(), replicated(mesh))
    step = experiment.train_step(mesh)
    for (x, y), _ in zip(data_lib.batches(ds, 64, seed=0), range(steps), strict=False):
        state, _ = step(state, *shard_batch(mesh, x, y))
    return experiment, jax.device_get(state)


def test_checkpointer_round_trip_is_bit_exact(tmp_path):
    cfg = make_config(TINY, weight_decay=1e-4)  # adamw: a nested optax state
    experiment, state = _trained_state(cfg)
    assert jax.tree.leaves(state.power_iteration), "the model should carry power-iteration vectors"
    record = {"config": cfg, "image_shape": [28, 28, 1], "num_classes": 10, "step": 3, "epoch": 1}
    ckpt = Checkpointer(tmp_path)
    assert ckpt.save(state, record) == 3
    restored, restored_record = ckpt.restore(experiment.init_state())
    variables, variables_record = ckpt.restore_variables(experiment.init_state().variables())
    ckpt.close()
    assert int(restored.step) == 3 and restored_record == variables_record == record
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert jax.tree.structure(variables) == jax.tree.structure(state.variables())
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(state.variables()), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(
        experiment.model.apply(variables, x), experiment.model.apply(state.variables(), x)
    )


def test_checkpointer_missing_step_is_a_clear_error(tmp_path):
    ckpt = Checkpointer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        ckpt.read_record()
    ckpt.close()


@pytest.fixture(scope="module")
def weight_decay_run(tmp_path_factory):
    """A finished run trained with weight decay (AdamW), which the old export could not rebuild."""
    workdir = tmp_path_factory.mktemp("run")
    train_and_evaluate(dict(TINY, weight_decay=1e-4), workdir, log=lambda _: None)
    return workdir


def test_export_from_workdir_needs_no_data_and_no_optimizer(weight_decay_run, tmp_path, monkeypatch):
    workdir = tmp_path / "copy"
    shutil.copytree(weight_decay_run, workdir)

    # No dataset can be loaded, no config.json, and the optimizer state is gone from the checkpoint.
    def no_data(*args, **kwargs):
        raise AssertionError("lipjax export must not load a dataset")

    monkeypatch.setattr(data_lib, "load", no_data)
    (workdir / "config.json").unlink()
    (step_dir,) = (workdir / "checkpoints").iterdir()
    shutil.rmtree(step_dir / "optimizer")
    exported, step = export_checkpoint(workdir)
    assert step == 4
    # The same network as the one the run itself exported at its end.
    saved = export_lib.load(weight_decay_run / "model.lipjax")
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(exported.apply(x), saved.apply(x))
    assert exported.body_lipschitz == saved.body_lipschitz


def test_export_of_a_missing_step_or_folder_is_a_clear_error(weight_decay_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint 7 in"):
        export_checkpoint(weight_decay_run, step=7)
    with pytest.raises(FileNotFoundError, match="checkpoints not found: is .* a training work directory"):
        export_checkpoint(tmp_path)
