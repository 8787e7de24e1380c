"""``lipjax train --config NAME[:ARG] [--set key=value ...] [--workdir DIR] [--resume]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        help="a config shipped with lipjax (e.g. mnist, mnist:smoke, cifar10_cpl_s) or a path "
        "to your own config .py file (path/to/my_config.py[:ARG])",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable), e.g. --set epochs=5 --set loss_kwargs.margin=1.5; "
        "--set num_train_steps=N stops after N steps (the schedule still spans the epochs)",
    )
    parser.add_argument("--workdir", default=None, help="output folder (default: runs/<config>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --workdir"
    )


def default_workdir(spec: str) -> str:
    """``runs/<config name>[_<arg>]``; a config file is named by its stem."""
    name, _, arg = spec.partition(":")
    stem = Path(name).stem if name.endswith(".py") else name
    return str(Path("runs") / (f"{stem}_{arg}" if arg else stem))


def run(args: argparse.Namespace) -> int:
    from lipjax.training import NonFiniteLossError, WorkdirError, load_config, train_and_evaluate
    from lipjax.training.config import ConfigError

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"lipjax train: {err}", file=sys.stderr)
        return 2
    workdir = args.workdir or default_workdir(args.config)
    try:
        train_and_evaluate(config, workdir, resume=args.resume)
    except (NonFiniteLossError, WorkdirError, FileNotFoundError, ValueError) as err:
        print(f"lipjax train: error: {err}", file=sys.stderr)
        return 1
    return 0
