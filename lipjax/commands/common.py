"""What the commands that evaluate an exported model share: its arguments and its loading."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any


class CommandError(Exception):
    """A user error a command reports in one line (and exit code 1), without a traceback."""


def add_model_and_data_arguments(parser: argparse.ArgumentParser, json_help: str) -> None:
    """The exported model, the dataset and the eps values, as ``lipjax certify`` takes them."""
    parser.add_argument("export", nargs="?", help="exported model file (from lipjax export / lipjax train)")
    parser.add_argument("--model", help="exported model file (same as the positional argument)")
    parser.add_argument("--workdir", help="a training work directory (uses <workdir>/model.lipjax)")
    parser.add_argument("--dataset", default="mnist", help="mnist, fashion_mnist, cifar10, ...")
    parser.add_argument("--source", default="auto", help="auto, embedded, idx, folder, npz, tfds, synthetic")
    parser.add_argument(
        "--data", "--path", dest="path", default=None, help="dataset file or folder for local sources"
    )
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir")
    parser.add_argument("--split", default="test")
    parser.add_argument("--classes", default=None, help="comma-separated classes to keep (e.g. 0,8)")
    parser.add_argument("--eps", default=None, help="comma-separated eps (default: dataset's)")
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--json", default=None, help=json_help + " (never overwritten)")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """An exported model and the data to evaluate it on."""

    path: str
    exported: Any  # lipjax.export.Exported
    dataset: Any  # lipjax.data.Dataset
    eps: tuple[float, ...]


def load_model_and_data(args: argparse.Namespace) -> Evaluation:
    """Loads what :func:`add_model_and_data_arguments` names; raises :class:`CommandError`."""
    from lipjax import data as data_lib
    from lipjax import export as export_lib

    path = args.export or args.model or (str(Path(args.workdir) / "model.lipjax") if args.workdir else None)
    if path is None:
        raise CommandError("give an EXPORT file, --model FILE or --workdir DIR")
    if args.json and os.path.exists(args.json):
        raise CommandError(f"{args.json} exists; not overwriting it")
    try:
        exported = export_lib.load(path)
        ds = data_lib.load(
            args.dataset, args.split, source=args.source, path=args.path, data_dir=args.data_dir
        )
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err)) from err
    if args.classes:
        ds = data_lib.select_classes(ds, [int(c) for c in args.classes.split(",")])
    if args.limit:
        ds = ds.take(args.limit)
    if args.eps:
        try:
            eps = tuple(float(e) for e in args.eps.split(","))
        except ValueError as err:
            raise CommandError(f"--eps must be comma-separated numbers; got {args.eps!r}") from err
    else:
        info = data_lib.DATASETS.get(args.dataset)
        eps = info.eps if info else (0.1, 0.5, 1.0)
    return Evaluation(str(path), exported, ds, eps)


def write_json(path: str, result: dict[str, Any]) -> None:
    """Writes ``result``; refuses to replace an existing file (checked again at write time)."""
    import json

    with open(path, "x") as f:
        json.dump(result, f, indent=2)
