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


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lipjax.certify import predict
    from lipjax.commands.report import lipschitz_statement

    try:
        ev = load_model_and_data(args)
    except CommandError as err:
        print(f"lipjax certify: error: {err}", file=sys.stderr)
        return 1
    exported, ds, eps = ev.exported, ev.dataset, ev.eps
    x = ds.float_images()
    logits = exported.apply(x, batch_size=args.batch_size)
    clean = float(np.mean(np.asarray(predict(logits)) == ds.labels))
    radii = np.asarray(exported.certified_radius(logits, labels=ds.labels))
    cert = [float(np.mean(radii > e)) for e in eps]
    print(f"model: {ev.path}")
    print(lipschitz_statement(exported))
    print(f"data: {len(ds)} {args.dataset} {args.split} images")
    print(f"{'eps':>10}  {'accuracy':>9}")
    print(f"{'clean':>10}  {100 * clean:8.2f}%")
    for e, c in zip(eps, cert, strict=True):
        print(f"{e:>10.4g}  {100 * c:8.2f}%")
    if args.json:
        write_json(
            args.json,
            {
                "model": ev.path,
                "lipschitz": exported.lipschitz,
                "body_lipschitz": exported.body_lipschitz,
                "dataset": args.dataset,
                "split": args.split,
                "examples": len(ds),
                "clean_accuracy": clean,
                "certified_accuracy": {f"{e:g}": c for e, c in zip(eps, cert, strict=True)},
            },
        )
        print(f"results: {args.json}")
    return 0
