"""``lipjax attack EXPORT --dataset mnist --eps 0.5,1.0``: PGD-l2 accuracy next to certified accuracy.

For each eps, the fraction of points still correctly classified after a PGD-l2
attack of that radius (an upper bound of the robust accuracy) beside the
certified accuracy (a lower bound). ``--strong`` switches from the paper's
setting (10 steps, one start) to 100 steps, 5 restarts and the DLR loss.
"""

from __future__ import annotations

import argparse
import sys

from lipjax.commands.common import CommandError, add_model_and_data_arguments, load_model_and_data, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_and_data_arguments(parser, json_help="write the results to this JSON file")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (default 10, as in the paper)")
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--loss", default="ce", help="ce, margin or dlr")
    parser.add_argument("--strong", action="store_true", help="100 steps, 5 restarts, DLR loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot", default=None, help="write certified and PGD curves to PLOT.png and PLOT.csv"
    )


def run(args: argparse.Namespace) -> int:
    import jax

    from lipjax.evaluate import write_curves

    try:
        ev = load_model_and_data(args)
    except CommandError as err:
        print(f"lipjax attack: error: {err}", file=sys.stderr)
        return 1
    steps, restarts, loss = (100, 5, "dlr") if args.strong else (args.steps, args.restarts, args.loss)
    attack = {"steps": steps, "restarts": restarts, "loss": loss}
    exported, ds = ev.exported, ev.dataset
    try:
        report = exported.evaluate(
            ds.float_images(),
            ds.labels,
            ev.eps,
            batch_size=args.batch_size,
            pgd=True,
            pgd_kwargs={**attack, "key": jax.random.key(args.seed)},
        )
    except ValueError as err:
        print(f"lipjax attack: error: {err}", file=sys.stderr)
        return 1
    print(f"model: {ev.path}; PGD-l2 {steps} steps, {restarts} restart(s), {loss} loss")
    print(f"data: {len(ds)} {args.dataset} {args.split} images")
    print(report.table())
    if args.json:
        result = {"model": ev.path, "dataset": args.dataset, "split": args.split}
        result.update(attack={**attack, "seed": args.seed}, **report.as_dict())
        write_json(args.json, result)
        print(f"results: {args.json}")
    if args.plot:
        print("curves: {} and {}".format(*write_curves({ev.path: report}, args.plot)))
    return 0
