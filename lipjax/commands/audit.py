"""``lipjax audit EXPORT --dataset mnist``: try to break every certificate of an exported model.

Attacks every certified point inside its certified radius (PGD with margin and
cross-entropy losses, several restarts, no clipping) and counts violations. Exit
code 0 when there are none, 3 when the audit found a wrong certificate.
"""

from __future__ import annotations

import argparse
import sys

from lipjax.commands.common import CommandError, add_model_and_data_arguments, load_model_and_data, write_json

VIOLATION_EXIT_CODE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_and_data_arguments(parser, json_help="write the audit report to this JSON file")
    parser.add_argument("--steps", type=int, default=50, help="PGD steps per restart")
    parser.add_argument("--restarts", type=int, default=3, help="random starts per loss")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import jax

    from lipjax import audit

    try:
        ev = load_model_and_data(args)
    except CommandError as err:
        print(f"lipjax audit: error: {err}", file=sys.stderr)
        return 1
    exported, ds = ev.exported, ev.dataset
    x, y = ds.float_images(), ds.labels
    # Radii of the exact network: float64 forward pass (where available), rounding bound subtracted.
    radii = exported.certify(x, y, batch_size=args.batch_size)
    report = audit.audit_certificates(
        exported.apply,
        x,
        y,
        radii,
        steps=args.steps,
        restarts=args.restarts,
        batch_size=min(args.batch_size, 256),
        key=jax.random.key(args.seed),
    )
    print(f"model: {ev.path}; data: {len(ds)} {args.dataset} {args.split} images")
    print(report.summary())
    if report.violations:
        print(f"violating examples: {report.violating_indices[:20].tolist()}")
    if args.json:
        write_json(
            args.json,
            {
                "model": ev.path,
                "dataset": args.dataset,
                "split": args.split,
                "examples": report.examples,
                "certified": report.certified,
                "violations": report.violations,
                "violating_indices": report.violating_indices.tolist(),
                "attack": {"steps": args.steps, "restarts": args.restarts, "seed": args.seed},
            },
        )
        print(f"report: {args.json}")
    return VIOLATION_EXIT_CODE if report.violations else 0
