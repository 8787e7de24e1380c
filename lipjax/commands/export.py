"""``lipjax export --workdir DIR [--step N] [--out FILE]``: checkpoint -> exported model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="a training work directory")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--out", default=None, help="output file (default: <workdir>/model.lipjax)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def export_checkpoint(workdir: str | Path, step: int | None = None):
    """Rebuilds the model of a work directory and exports a checkpoint of it."""
    import jax
    import jax.numpy as jnp

    from lipjax import export as export_lib
    from lipjax.training import (
        Checkpointer,
        build_model,
        create_train_state,
        load_datasets,
        make_config,
        make_optimizer,
    )

    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path} not found: is {workdir} a training work directory?")
    cfg = make_config(json.loads(config_path.read_text()))
    train, _ = load_datasets(cfg)
    model = build_model(cfg, train.num_classes)
    steps = max(len(train) // cfg["batch_size"], 1) * cfg["epochs"]
    tx = make_optimizer(cfg["optimizer"], cfg["learning_rate"], steps, cfg["schedule"])
    sample = jnp.zeros((1, *train.image_shape), jnp.float32)
    template = create_train_state(model, tx, jax.random.key(0), sample)
    ckpt = Checkpointer(workdir, cfg["keep_checkpoints"])
    try:
        state, _ = ckpt.restore(template, step)
    finally:
        ckpt.close()
    return export_lib.export(model, state.variables(), train.image_shape), int(state.step)


def run(args: argparse.Namespace) -> int:
    from lipjax import export as export_lib

    try:
        exported, step = export_checkpoint(args.workdir, args.step)
    except (FileNotFoundError, ValueError) as err:
        print(f"lipjax export: error: {err}", file=sys.stderr)
        return 1
    out = args.out or str(Path(args.workdir) / "model.lipjax")
    try:
        export_lib.save(out, exported, overwrite=args.overwrite)
    except FileExistsError as err:
        print(f"lipjax export: error: {err}", file=sys.stderr)
        return 1
    print(exported.summary())
    print(f"exported step {step} to {out}")
    return 0
