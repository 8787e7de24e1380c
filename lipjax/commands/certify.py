"""``lipjax certify EXPORT --data PATH --eps 0.5,1.0``: certified accuracy of an exported model.

The model may also be given as ``--model FILE`` or ``--workdir DIR`` (a training
work directory). Prints a table of certified accuracy against eps and, with
``--json OUT``, writes the same numbers as JSON. Only ``lipjax.export`` and
``lipjax.certify`` are involved: no training code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--json", default=None, help="write the results to this JSON file (never overwritten)"
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lipjax import data as data_lib
    from lipjax import export as export_lib
    from lipjax.commands.report import lipschitz_statement

    path = args.export or args.model or (str(Path(args.workdir) / "model.lipjax") if args.workdir else None)
    if path is None:
        print("lipjax certify: error: give an EXPORT file, --model FILE or --workdir DIR", file=sys.stderr)
        return 2
    if args.json and os.path.exists(args.json):
        print(f"lipjax certify: error: {args.json} exists; not overwriting it", file=sys.stderr)
        return 1
    try:
        exported = export_lib.load(path)
        ds = data_lib.load(
            args.dataset, args.split, source=args.source, path=args.path, data_dir=args.data_dir
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"lipjax certify: error: {err}", file=sys.stderr)
        return 1
    if args.classes:
        ds = data_lib.select_classes(ds, [int(c) for c in args.classes.split(",")])
    if args.limit:
        ds = ds.take(args.limit)
    if args.eps:
        eps = tuple(float(e) for e in args.eps.split(","))
    else:
        info = data_lib.DATASETS.get(args.dataset)
        eps = info.eps if info else (0.1, 0.5, 1.0)
    x = ds.float_images()
    logits = np.asarray(exported.apply(x, batch_size=args.batch_size))
    if logits.ndim == 1 or logits.shape[-1] == 1:
        pred = (logits.reshape(-1) > 0).astype(np.int32)
    else:
        pred = logits.argmax(-1)
    clean = float(np.mean(pred == ds.labels))
    cert = np.asarray(exported.certified_accuracy(x, ds.labels, eps, batch_size=args.batch_size))
    cert = np.atleast_1d(cert)
    print(f"model: {path}")
    print(lipschitz_statement(exported))
    print(f"data: {len(ds)} {args.dataset} {args.split} images")
    print(f"{'eps':>10}  {'accuracy':>9}")
    print(f"{'clean':>10}  {100 * clean:8.2f}%")
    for e, c in zip(eps, cert, strict=True):
        print(f"{e:>10.4g}  {100 * float(c):8.2f}%")
    if args.json:
        result = {
            "model": str(path),
            "lipschitz": exported.lipschitz,
            "body_lipschitz": exported.body_lipschitz,
            "dataset": args.dataset,
            "split": args.split,
            "examples": len(ds),
            "clean_accuracy": clean,
            "certified_accuracy": {f"{e:g}": float(c) for e, c in zip(eps, cert, strict=True)},
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results: {args.json}")
    return 0
