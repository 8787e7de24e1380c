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


def pgd_accuracy(apply_fn, x, y, eps, batch_size, **attack_kwargs) -> float:
    """Fraction of ``(x, y)`` still correctly classified after :func:`lipjax.attacks.pgd_l2` at ``eps``."""
    import numpy as np

    from lipjax import attacks
    from lipjax.certify import predict

    correct = 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        x_adv = attacks.pgd_l2(apply_fn, xb, yb, eps, **attack_kwargs)
        correct += int(np.sum(np.asarray(predict(apply_fn(x_adv))) == yb))
    return correct / max(len(y), 1)


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np
    from tqdm import tqdm

    from lipjax.certify import predict

    try:
        ev = load_model_and_data(args)
    except CommandError as err:
        print(f"lipjax attack: error: {err}", file=sys.stderr)
        return 1
    steps, restarts, loss = (100, 5, "dlr") if args.strong else (args.steps, args.restarts, args.loss)
    exported, ds = ev.exported, ev.dataset
    x, y = ds.float_images(), ds.labels
    logits = exported.apply(x, batch_size=args.batch_size)
    clean = float(np.mean(np.asarray(predict(logits)) == y))
    radii = np.asarray(exported.certified_radius(logits, labels=y))
    rows = []
    try:
        for e in tqdm(ev.eps, desc="PGD per eps", disable=len(ev.eps) < 2):
            robust = pgd_accuracy(
                exported.apply,
                x,
                y,
                e,
                args.batch_size,
                steps=steps,
                restarts=restarts,
                loss=loss,
                key=jax.random.key(args.seed),
            )
            rows.append((e, float(np.mean(radii > e)), robust))
    except ValueError as err:
        print(f"lipjax attack: error: {err}", file=sys.stderr)
        return 1
    print(f"model: {ev.path}; PGD-l2 {steps} steps, {restarts} restart(s), {loss} loss")
    print(f"data: {len(ds)} {args.dataset} {args.split} images; clean accuracy {100 * clean:.2f}%")
    print(f"{'eps':>10}  {'certified':>9}  {'PGD':>8}")
    for e, c, r in rows:
        print(f"{e:>10.4g}  {100 * c:8.2f}%  {100 * r:7.2f}%")
    if args.json:
        write_json(
            args.json,
            {
                "model": ev.path,
                "dataset": args.dataset,
                "split": args.split,
                "examples": len(ds),
                "attack": {"steps": steps, "restarts": restarts, "loss": loss, "seed": args.seed},
                "clean_accuracy": clean,
                "certified_accuracy": {f"{e:g}": c for e, c, _ in rows},
                "pgd_accuracy": {f"{e:g}": r for e, _, r in rows},
            },
        )
        print(f"results: {args.json}")
    return 0
