"""``lipjax export --workdir DIR [--step N] [--out FILE]``: checkpoint -> exported model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="a training work directory")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--out", default=None, help="output file (default: <workdir>/model.lipjax)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def export_checkpoint(workdir: str | Path, step: int | None = None):
    """Exports a checkpoint of a training work directory, from the checkpoint alone.

    The checkpoint's record names the config, input shape and classes; only the
    model variables are read: no dataset, no optimizer state.

    Returns:
      ``(exported, step)``.
    """
    from lipjax import export as export_lib
    from lipjax.training import Checkpointer, make_config, model_template

    directory = Path(workdir) / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} not found: is {workdir} a training work directory?")
    ckpt = Checkpointer(workdir)
    try:
        step = ckpt.latest_step() if step is None else step
        record = ckpt.read_record(step)
        missing = [k for k in ("config", "image_shape", "num_classes") if k not in record]
        if missing:
            raise ValueError(
                f"checkpoint {step} in {directory} lacks {missing} in its record: it was written by "
                "an older lipjax; retrain, or export from the training code"
            )
        cfg = make_config(record["config"])
        image_shape = tuple(record["image_shape"])
        model, abstract = model_template(cfg, image_shape, record["num_classes"])
        variables, _ = ckpt.restore_variables(abstract, step)
    finally:
        ckpt.close()
    return export_lib.export(model, variables, image_shape), int(step)


def run(args: argparse.Namespace) -> int:
    from lipjax import export as export_lib
    from lipjax.commands.report import lipschitz_statement

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
    print(lipschitz_statement(exported))
    print(f"exported step {step} to {out}")
    return 0
