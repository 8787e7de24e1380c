"""``lipjax certify EXPORT --data PATH --eps 0.5,1.0``: certified accuracy of an exported model.

The model may also be given as ``--model FILE`` or ``--workdir DIR`` (a training
work directory). Prints a table of certified accuracy against eps and, with
``--json OUT``, writes the same numbers as JSON. Only ``lipjax.export`` and
``lipjax.certify`` are involved: no training code.
"""

from __future__ import annotations

import argparse
import sys

from lipjax.commands.common import CommandError, add_model_and_data_arguments, load_model_and_data, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_and_data_arguments(parser, json_help="write the results to this JSON file")
    parser.add_argument(
        "--plot", default=None, help="write the certified-accuracy curve to PLOT.png and PLOT.csv"
    )


def run(args: argparse.Namespace) -> int:
    from lipjax.commands.report import lipschitz_statement
    from lipjax.evaluate import write_curves

    try:
        ev = load_model_and_data(args)
    except CommandError as err:
        print(f"lipjax certify: error: {err}", file=sys.stderr)
        return 1
    exported, ds = ev.exported, ev.dataset
    report = exported.evaluate(ds.float_images(), ds.labels, ev.eps, batch_size=args.batch_size)
    print(f"model: {ev.path}")
    print(lipschitz_statement(exported))
    print(f"data: {len(ds)} {args.dataset} {args.split} images")
    print(report.table())
    if args.json:
        result = {
            "model": ev.path,
            "lipschitz": exported.lipschitz,
            "body_lipschitz": exported.body_lipschitz,
        }
        result.update(dataset=args.dataset, split=args.split, **report.as_dict())
        write_json(args.json, result)
        print(f"results: {args.json}")
    if args.plot:
        print("curves: {} and {}".format(*write_curves({ev.path: report}, args.plot)))
    return 0
