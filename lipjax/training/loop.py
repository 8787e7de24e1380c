"""The training loop: ``train_and_evaluate(config, workdir)``.

The run goes through four stages: build the experiment from the config and the
data; open the work directory (fresh, or resumed from its latest checkpoint);
train, with periodic actions (log, checkpoint, evaluate) decided by the step;
certify the final network and report.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from lipjax import data as data_lib
from lipjax.training.checkpoints import Checkpointer
from lipjax.training.config import make_config
from lipjax.training.evaluation import dataset_eps, export_and_certify, final_report, format_eval
from lipjax.training.experiment import Experiment, build_experiment
from lipjax.training.metrics import MetricsWriter
from lipjax.training.state import TrainState
from lipjax.training.steps import make_mesh, process_slice, replicated, shard_batch

EVAL_KEYS = ("clean_accuracy", "certified_accuracy", "eps", "lipschitz", "body_lipschitz")


class NonFiniteLossError(RuntimeError):
    """The loss (or the parameters) became NaN or infinite; the run stopped."""


class WorkdirError(RuntimeError):
    """The work directory holds a run that was not asked to be resumed."""


def load_datasets(cfg: dict[str, Any]) -> tuple[data_lib.Dataset, data_lib.Dataset]:
    """The train and test sets of a config (classes, limits applied)."""
    kwargs = dict(
        source=cfg["data_source"], path=cfg["data_path"], data_dir=cfg["data_dir"], download=cfg["download"]
    )
    train = data_lib.load(cfg["dataset"], "train", **kwargs)
    test = data_lib.load(cfg["dataset"], "test", **kwargs)
    if cfg["classes"] is not None:
        train = data_lib.select_classes(train, cfg["classes"])
        test = data_lib.select_classes(test, cfg["classes"])
    if cfg["train_limit"]:
        train = train.take(int(cfg["train_limit"]))
    if cfg["test_limit"]:
        test = test.take(int(cfg["test_limit"]))
    return train, test


def experiment_for(cfg: dict[str, Any], train: data_lib.Dataset) -> Experiment:
    """:func:`build_experiment` for the training set ``train``."""
    return build_experiment(
        cfg, num_train_examples=len(train), image_shape=train.image_shape, num_classes=train.num_classes
    )


def train_batches(
    train: data_lib.Dataset, batch_size: int, seed: int, steps_per_epoch: int, start_step: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The batches of steps ``start_step + 1, ...``: each epoch reshuffled from ``seed``.

    A batch depends only on the seed and its step, so a resumed run sees the
    batches an uninterrupted run would have.
    """
    epoch, index = divmod(start_step, steps_per_epoch)
    while True:
        yield from data_lib.batches(train, batch_size, seed=seed, epoch=epoch, start=index)
        epoch, index = epoch + 1, 0


def check_finite(values: dict[str, float], step: int, epoch: int, last_good: str) -> None:
    """Raises :class:`NonFiniteLossError` naming every non-finite value of ``values``."""
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(
            f"non-finite {', '.join(bad)} ({values[bad[0]]}) at step {step} (epoch {epoch}); "
            f"training stopped and {last_good}. Try a lower learning_rate, or --resume after "
            "fixing the config."
        )


def _open_run(
    experiment: Experiment, workdir: Path, resume: bool, log: Callable[[str], None]
) -> tuple[Checkpointer, TrainState, int | None]:
    """The checkpointer and the state to start from: fresh, or the latest checkpoint when resuming."""
    cfg = experiment.config
    ckpt = Checkpointer(workdir, cfg["keep_checkpoints"])
    latest = ckpt.latest_step()
    if latest is not None and not resume:
        ckpt.close()
        raise WorkdirError(
            f"{workdir} already holds checkpoints (latest step {latest}); pass --resume to "
            "continue that run, or choose another --workdir"
        )
    state = experiment.init_state()
    if latest is not None:
        try:
            state, _ = ckpt.restore(state)
        except BaseException:
            ckpt.close()
            raise
        log(f"resumed from step {latest} in {ckpt.directory}")
    return ckpt, state, latest


def train_and_evaluate(
    config: dict[str, Any],
    workdir: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains the model of ``config``, checkpointing in ``workdir``, then certifies it.

    Args:
      config: a config dict (see :data:`lipjax.training.config.DEFAULTS`);
        ``num_train_steps`` stops the run early (the schedule still spans ``epochs``).
      workdir: where checkpoints, ``metrics.jsonl``/``.csv``, ``config.json``,
        ``results.json``, ``model.lipjax`` and ``certified_accuracy.png`` go.
      resume: continue from the latest checkpoint in ``workdir``. Without it, a
        workdir that already holds checkpoints is an error.
      log: where progress lines go.

    Returns:
      The results: clean and certified accuracies, certified constants, times, paths.

    Raises:
      NonFiniteLossError: the loss, the gradient or the parameters became NaN/inf;
        the last good checkpoint stays.
      WorkdirError: checkpoints exist and ``resume`` is False.
    """
    t0 = time.perf_counter()

    # 1. The experiment: data, model, optimizer, steps.
    cfg = make_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train, test = load_datasets(cfg)
    experiment = experiment_for(cfg, train)
    eps = dataset_eps(cfg)
    batch_size, spe = int(cfg["batch_size"]), experiment.steps_per_epoch
    mesh = make_mesh()
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} is not divisible by {mesh.size} devices")

    # 2. The run: fresh or resumed.
    ckpt, state, latest = _open_run(experiment, workdir, resume, log)
    (workdir / "config.json").write_text(json.dumps(cfg, indent=2, default=str) + "\n")
    state = jax.device_put(state, replicated(mesh))
    start = int(jax.device_get(state.step))
    last = experiment.num_train_steps
    writer = MetricsWriter(workdir, resume_step=start if latest is not None else None)
    log(
        f"{cfg['name'] or 'run'}: {cfg['model']} on {cfg['dataset']} ({len(train)} train, "
        f"{len(test)} test), {cfg['epochs']} epochs x {spe} steps"
        + (f" (stopping at step {last})" if last < experiment.scheduled_steps else "")
        + f", batch {batch_size}, {mesh.size} device(s) [{jax.devices()[0].platform}]"
    )

    # 3. Training, with periodic actions.
    record = {
        "config": cfg,
        "image_shape": list(experiment.image_shape),
        "num_classes": experiment.num_classes,
    }
    ckpt_every = int(cfg["checkpoint_every_steps"]) or spe
    log_every = max(int(cfg["log_every_steps"]), 1)
    eval_every = int(cfg["eval_every_epochs"])
    eval_test = test.take(int(cfg["eval_limit"])) if cfg["eval_limit"] else test
    rows = process_slice(batch_size)
    last_good = latest
    train_step = experiment.train_step(mesh)
    window: list[dict[str, jax.Array]] = []
    pbar = None
    if cfg["progress"] and start < last:
        from tqdm.auto import tqdm

        pbar = tqdm(total=last, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)

    def where_last_good() -> str:
        if last_good is None:
            return "no checkpoint was saved before it"
        return f"the last good checkpoint is step {last_good} in {ckpt.directory}"

    def log_train(step: int, epoch: int) -> None:
        means = {k: float(np.mean(v)) for k, v in jax.device_get(_stack(window)).items()}
        check_finite(means, step, epoch, where_last_good())
        # the rate the last update used: the optimizer's own schedule at its step count
        lr = float(experiment.schedule(step - 1))
        # wall seconds since this process began training: epoch times are differences of rows
        seconds = time.perf_counter() - t_train
        writer.write(step, "train", epoch=epoch, lr=lr, seconds=seconds, **means)
        if pbar is not None:
            pbar.set_postfix(loss=f"{means['loss']:.4f}", acc=f"{means['accuracy']:.3f}")
        window.clear()

    def save_checkpoint(step: int, epoch: int) -> None:
        nonlocal last_good
        check_finite({"param_norm": float(optax.tree.norm(state.params))}, step, epoch, where_last_good())
        ckpt.save(state, {**record, "step": step, "epoch": epoch})
        last_good = step

    def evaluate(step: int, epoch: int) -> None:
        res = export_and_certify(
            experiment.model, jax.device_get(state).variables(), eval_test, eps, cfg["eval_batch_size"]
        )
        writer.write(
            step,
            "eval",
            epoch=epoch,
            **{k: res[k] for k in EVAL_KEYS},
        )
        msg = f"epoch {epoch}: {format_eval(res)} (on {len(eval_test)} test images)"
        if pbar is not None:
            pbar.write(msg)  # keeps the progress bar intact
        else:
            log(msg)

    time_first_step = None
    t_train = time.perf_counter()
    batches = train_batches(train, batch_size, cfg["seed"], spe, start)
    try:
        for step in range(start + 1, last + 1):
            images, labels = next(batches)
            state, metrics = train_step(state, *shard_batch(mesh, images[rows], labels[rows]))
            if time_first_step is None:
                jax.block_until_ready(metrics)
                time_first_step = time.perf_counter() - t_train
            window.append(metrics)
            if pbar is not None:
                pbar.update(1)
            epoch = (step - 1) // spe + 1
            end_of_epoch = step % spe == 0
            checkpoint_due = step % ckpt_every == 0 or end_of_epoch or step == last
            if step % log_every == 0 or checkpoint_due:
                log_train(step, epoch)
            if checkpoint_due:
                save_checkpoint(step, epoch)
            if end_of_epoch and eval_every and epoch % eval_every == 0 and step < last:
                evaluate(step, epoch)
    finally:
        if pbar is not None:
            pbar.close()
        ckpt.close()
    train_time = time.perf_counter() - t_train

    # 4. Certification of the final network, results and plot.
    t_cert = time.perf_counter()
    res = export_and_certify(
        experiment.model, jax.device_get(state).variables(), test, eps, cfg["eval_batch_size"], True
    )
    cert_time = time.perf_counter() - t_cert
    final_step = int(jax.device_get(state.step))  # = last, unless resumed from beyond it
    results = {
        "config": cfg["name"],
        "steps": final_step,
        "test_images": len(test),
        "train_seconds": train_time,
        "time_to_first_step": time_first_step,
        "certify_seconds": cert_time,
        "total_seconds": time.perf_counter() - t0,
        "train_images_per_second": (last - start) * batch_size / train_time if last > start else None,
    }
    results = final_report(cfg, workdir, res, results, log)
    writer.write(final_step, "final", **{k: v for k, v in results.items() if k != "config"})
    return results


def _stack(window: list[dict[str, jax.Array]]) -> dict[str, jax.Array]:
    return {k: [m[k] for m in window] for k in window[0]}
