"""The training loop: ``train_and_evaluate(config, workdir)``."""

from __future__ import annotations

import inspect
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipjax import data as data_lib
from lipjax.training.checkpoints import Checkpointer
from lipjax.training.config import make_config
from lipjax.training.metrics import MetricsWriter
from lipjax.training.plot import certified_curve, plot_certified_accuracy
from lipjax.training.state import create_train_state, make_optimizer
from lipjax.training.steps import (
    make_loss_fn,
    make_mesh,
    make_train_step,
    process_slice,
    replicated,
    shard_batch,
)


class NonFiniteLossError(RuntimeError):
    """The loss (or the parameters) became NaN or infinite; the run stopped."""


class WorkdirError(RuntimeError):
    """The work directory holds a run that was not asked to be resumed."""


def load_datasets(cfg: dict[str, Any]) -> tuple[data_lib.Dataset, data_lib.Dataset]:
    kwargs = dict(source=cfg["data_source"], path=cfg["data_path"], data_dir=cfg["data_dir"])
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


def build_model(cfg: dict[str, Any], num_classes: int):
    """``lipjax.models.<cfg['model']>(num_classes=..., **cfg['model_kwargs'])``."""
    name = cfg["model"]
    if ":" in name:  # "package.module:function" for architectures defined elsewhere
        import importlib

        module_name, _, attr = name.partition(":")
        factory = getattr(importlib.import_module(module_name), attr, None)
    else:
        from lipjax import models

        factory = getattr(models, name, None)
    if factory is None or not callable(factory):
        raise ValueError(f"unknown model {name!r} (a lipjax.models function or 'module:function')")
    kwargs = dict(cfg["model_kwargs"] or {})
    for key in ("mean", "std"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    out_classes = 1 if num_classes == 2 and cfg["loss"] == "hkr" else num_classes
    if "num_classes" in inspect.signature(factory).parameters:
        kwargs.setdefault("num_classes", out_classes)
    return factory(**kwargs)


def head_fn_for(model) -> Callable | None:
    """A function params -> rows of the normalized last layer, when the model has one."""
    from lipjax.layers import NormalizedDense, Sequential
    from lipjax.layers.spectral import normalize_columns

    if not isinstance(model, Sequential) or not isinstance(model.layers[-1], NormalizedDense):
        return None
    name = f"layers_{len(model.layers) - 1}"
    return lambda params: normalize_columns(params[name]["kernel"]).T


def dataset_eps(cfg: dict[str, Any]) -> tuple[float, ...]:
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
    """Exports the model and certifies it on ``test`` through ``lipjax.certify``.

    Returns clean accuracy, certified accuracy at each eps, the certified
    Lipschitz constant, and (``with_radii``) per-example radii and correctness.
    """
    from lipjax import certify
    from lipjax import export as export_lib

    exported = export_lib.export(model, variables, test.image_shape)
    images = test.float_images()
    logits = np.concatenate(
        [
            np.asarray(exported.apply(jnp.asarray(images[i : i + batch_size])))
            for i in range(0, len(test), batch_size)
        ]
    )
    labels = jnp.asarray(test.labels)
    head = exported.head
    lip = exported.body_lipschitz if head is not None else exported.lipschitz
    if logits.ndim == 1 or logits.shape[-1] == 1:
        pred = (logits.reshape(-1) > 0).astype(np.int32)
    else:
        pred = logits.argmax(-1)
    correct = pred == test.labels
    cert = np.asarray(
        certify.certified_accuracy(jnp.asarray(logits), labels, jnp.asarray(eps), lip, head=head)
    )
    out = {
        "clean_accuracy": float(correct.mean()),
        "certified_accuracy": [float(c) for c in cert],
        "eps": [float(e) for e in eps],
        "lipschitz": float(exported.lipschitz),
        "exported": exported,
    }
    if with_radii:
        radii = np.asarray(certify.certified_radius(jnp.asarray(logits), lip, head=head, labels=labels))
        out["radii"] = radii
        out["correct"] = correct
    return out


def _fmt_eval(res: dict[str, Any]) -> str:
    parts = [f"clean {100 * res['clean_accuracy']:.2f}%"]
    parts += [
        f"cert@{e:.3g} {100 * c:.2f}%" for e, c in zip(res["eps"], res["certified_accuracy"], strict=True)
    ]
    return ", ".join(parts)


def train_and_evaluate(
    config: dict[str, Any],
    workdir: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Trains the model of ``config``, checkpointing in ``workdir``, then certifies it.

    Args:
      config: a config dict (see :data:`lipjax.training.config.DEFAULTS`).
      workdir: where checkpoints, ``metrics.jsonl``/``.csv``, ``config.json``,
        ``results.json``, ``model.lipjax`` and ``certified_accuracy.png`` go.
      resume: continue from the latest checkpoint in ``workdir``. Without it, a
        workdir that already holds checkpoints is an error.
      log: where progress lines go.

    Returns:
      The results: clean and certified accuracies, times, paths. A run stopped
      by ``stop_at_step`` returns ``{"stopped_at": step}``.

    Raises:
      NonFiniteLossError: the loss became NaN/inf; the last good checkpoint stays.
      WorkdirError: checkpoints exist and ``resume`` is False.
    """
    t0 = time.perf_counter()
    cfg = make_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    train, test = load_datasets(cfg)
    eps = dataset_eps(cfg)
    model = build_model(cfg, train.num_classes)
    batch_size = int(cfg["batch_size"])
    steps_per_epoch = len(train) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training set ({len(train)})")
    total_steps = int(cfg["epochs"]) * steps_per_epoch
    tx = make_optimizer(
        cfg["optimizer"], cfg["learning_rate"], total_steps, cfg["schedule"], cfg["weight_decay"]
    )
    mesh = make_mesh()
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} is not divisible by {mesh.size} devices")

    sample = jnp.zeros((1, *train.image_shape), jnp.float32)
    state = create_train_state(model, tx, jax.random.key(cfg["seed"]), sample)
    ckpt = Checkpointer(workdir, cfg["keep_checkpoints"])
    latest = ckpt.latest_step()
    if latest is not None and not resume:
        raise WorkdirError(
            f"{workdir} already holds checkpoints (latest step {latest}); pass --resume to "
            "continue that run, or choose another --workdir"
        )
    if resume and latest is not None:
        state, _ = ckpt.restore(state)
        log(f"resumed from step {latest} in {ckpt.directory}")
    (workdir / "config.json").write_text(json.dumps(cfg, indent=2, default=str) + "\n")
    state = jax.device_put(state, replicated(mesh))
    start = int(jax.device_get(state.step))
    writer = MetricsWriter(workdir, resume_step=start if resume else None)

    loss_fn = make_loss_fn(cfg["loss"], cfg["loss_kwargs"], head_fn_for(model))
    train_step = make_train_step(
        model,
        tx,
        loss_fn,
        mesh,
        seed=cfg["seed"],
        augment=cfg["augment"],
        crop_padding=cfg["crop_padding"],
        flip=cfg["flip"],
    )
    ckpt_every = int(cfg["checkpoint_every_steps"]) or steps_per_epoch
    log_every = max(int(cfg["log_every_steps"]), 1)
    eval_every = int(cfg["eval_every_epochs"])
    stop_at = cfg["stop_at_step"]
    eval_test = test.take(int(cfg["eval_limit"])) if cfg["eval_limit"] else test
    rows = process_slice(batch_size)
    log(
        f"{cfg['name'] or 'run'}: {cfg['model']} on {cfg['dataset']} ({len(train)} train, "
        f"{len(test)} test), {cfg['epochs']} epochs x {steps_per_epoch} steps, batch "
        f"{batch_size}, {mesh.size} device(s) [{jax.devices()[0].platform}]"
    )

    pbar = None
    if cfg["progress"] and start < total_steps:
        from tqdm.auto import tqdm

        pbar = tqdm(total=total_steps, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)
    acc_sum: dict[str, jax.Array] = {}
    acc_n = 0
    last_good = latest if resume else None
    time_first_step = None
    t_train = time.perf_counter()
    batch_iter, batch_epoch = None, -1

    def check_finite(metrics: dict[str, float], step: int) -> None:
        bad = [k for k in ("loss", "grad_norm") if not math.isfinite(metrics.get(k, 0.0))]
        if bad:
            where = (
                f"the last good checkpoint is step {last_good} in {ckpt.directory}"
                if last_good is not None
                else "no checkpoint was saved before it"
            )
            raise NonFiniteLossError(
                f"non-finite {', '.join(bad)} ({metrics[bad[0]]}) at step {step} "
                f"(epoch {step // steps_per_epoch + 1}); training stopped and {where}. "
                "Try a lower learning_rate, or --resume after fixing the config."
            )

    step = start
    try:
        while step < total_steps:
            epoch, index = divmod(step, steps_per_epoch)
            if batch_epoch != epoch:
                batch_iter = data_lib.batches(train, batch_size, seed=cfg["seed"], epoch=epoch, start=index)
                batch_epoch = epoch
            images, labels = next(batch_iter)
            images, labels = shard_batch(mesh, images[rows], labels[rows])
            state, metrics = train_step(state, images, labels)
            if time_first_step is None:
                jax.block_until_ready(metrics)
                time_first_step = time.perf_counter() - t_train
            for k, v in metrics.items():
                acc_sum[k] = acc_sum[k] + v if k in acc_sum else v
            acc_n += 1
            step += 1
            if pbar is not None:
                pbar.update(1)
            end_of_epoch = step % steps_per_epoch == 0
            stopping = stop_at is not None and step >= int(stop_at)
            must_save = step % ckpt_every == 0 or end_of_epoch or stopping or step == total_steps
            if step % log_every == 0 or must_save:
                means = {k: float(v) / acc_n for k, v in jax.device_get(acc_sum).items()}
                check_finite(means, step)
                lr = float(tx_lr(cfg, total_steps)(step - 1))
                writer.write(step, "train", epoch=epoch + 1, lr=lr, **means)
                if pbar is not None:
                    pbar.set_postfix(loss=f"{means['loss']:.4f}", acc=f"{means['accuracy']:.3f}")
                acc_sum, acc_n = {}, 0
            if must_save:
                pnorm = float(optax.tree.norm(state.params))
                check_finite({"loss": 0.0, "grad_norm": pnorm}, step)
                ckpt.save(state, {"epoch": epoch + 1, "step": step, "config": cfg})
                last_good = step
            if end_of_epoch and eval_every and (epoch + 1) % eval_every == 0 and step < total_steps:
                res = export_and_certify(
                    model, jax.device_get(state).variables(), eval_test, eps, cfg["eval_batch_size"]
                )
                writer.write(
                    step,
                    "eval",
                    epoch=epoch + 1,
                    clean_accuracy=res["clean_accuracy"],
                    certified_accuracy=res["certified_accuracy"],
                    eps=res["eps"],
                    lipschitz=res["lipschitz"],
                )
                msg = f"epoch {epoch + 1}: {_fmt_eval(res)} (on {len(eval_test)} test images)"
                if pbar is not None:
                    pbar.write(msg)
                else:
                    log(msg)
            if stopping:
                log(f"stopped at step {step} (stop_at_step)")
                return {"stopped_at": step}
    finally:
        if pbar is not None:
            pbar.close()
        ckpt.close()
    train_time = time.perf_counter() - t_train

    t_cert = time.perf_counter()
    res = export_and_certify(
        model, jax.device_get(state).variables(), test, eps, cfg["eval_batch_size"], True
    )
    from lipjax import export as export_lib

    export_lib.save(workdir / "model.lipjax", res["exported"])
    cert_time = time.perf_counter() - t_cert
    results = {
        "config": cfg["name"],
        "steps": step,
        "test_images": len(test),
        "clean_accuracy": res["clean_accuracy"],
        "eps": res["eps"],
        "certified_accuracy": res["certified_accuracy"],
        "lipschitz": res["lipschitz"],
        "train_seconds": train_time,
        "time_to_first_step": time_first_step,
        "certify_seconds": cert_time,
        "total_seconds": time.perf_counter() - t0,
        "train_images_per_second": (step - start) * batch_size / train_time if step > start else None,
        "model_path": str(workdir / "model.lipjax"),
    }
    writer.write(step, "final", **{k: v for k, v in results.items() if k != "config"})
    if cfg["plot"]:
        grid = np.linspace(0.0, max(max(eps) * 1.5, 1e-3), 200)
        curve = certified_curve(res["radii"], res["correct"], grid)
        results["plot_path"] = str(
            plot_certified_accuracy(
                workdir / "certified_accuracy.png",
                grid,
                curve,
                marks=eps,
                mark_values=res["certified_accuracy"],
                title=f"{cfg['name']}: certified accuracy ({len(test)} test images)",
            )
        )
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"clean accuracy: {100 * res['clean_accuracy']:.2f}% ({len(test)} test images)")
    for e, c in zip(res["eps"], res["certified_accuracy"], strict=True):
        log(f"certified accuracy at eps={e:.4g}: {100 * c:.2f}%")
    log(
        f"time: {results['total_seconds']:.0f} s in all (training {train_time:.0f} s, first "
        f"step {time_first_step or 0:.1f} s, certification {cert_time:.1f} s); "
        f"Lipschitz constant {res['lipschitz']:.4f}"
    )
    if "plot_path" in results:
        log(f"plot: {results['plot_path']}")
    return results


def tx_lr(cfg: dict[str, Any], total_steps: int):
    from lipjax.training.state import make_schedule

    return make_schedule(cfg["schedule"], cfg["learning_rate"], total_steps)
