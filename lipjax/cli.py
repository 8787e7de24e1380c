"""Command line: ``lipjax train | export | certify | attack | audit | bounds``.

Each sub-command lives in ``lipjax/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": "Train a network from a config.",
    "export": "Export a training checkpoint to a certified, code-free file.",
    "certify": "Certified accuracy of an exported model on a dataset.",
    "attack": "PGD-l2 accuracy of an exported model next to its certified accuracy.",
    "audit": "Attack every certified point inside its radius and count wrong certificates.",
    "bounds": "Lipschitz upper and lower bounds of an ordinary ReLU network.",
}


def _load(name: str):
    return importlib.import_module(f"lipjax.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lipjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        _load(name).add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
