"""``lipjax bounds PATH.npz --norm inf``: Lipschitz bounds of a ReLU network.

The ``.npz`` file holds the weight matrices ``W0, W1, ..., Wl`` (each out x in)
and optionally the biases ``b0, ..., bl`` (used only by the lower bound), or a
Flax MLP exported with flattened keys ``params/Dense_0/kernel`` (in x out),
``params/Dense_0/bias``, ... Prints every upper bound, its time and its ratio to
``K_star``, then the lower bound, so the Lipschitz constant lies in
``[lower, min(upper)]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np

from lipjax import bounds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help=".npz with W0, W1, ... (out x in) or params/Dense_k/kernel")
    parser.add_argument("--norm", default="inf", help="induced norm: 1, 2 or inf (default inf)")
    parser.add_argument(
        "--max-patterns",
        type=int,
        default=bounds.DEFAULT_MAX_PATTERNS,
        help="compute exact K only up to this many activation patterns",
    )
    parser.add_argument(
        "--max-subsets",
        type=int,
        default=bounds.DEFAULT_MAX_SUBSETS,
        help="compute K4 only up to this many (2^l) subsets",
    )
    parser.add_argument("--starts", type=int, default=64, help="lower bound: random starts")
    parser.add_argument("--steps", type=int, default=100, help="lower bound: ascent steps")
    parser.add_argument("--no-lower", action="store_true", help="skip the lower bound")
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")


def load_npz(path: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Reads ``W0..Wl`` (+ optional ``b0..bl``) or Flax ``params/Dense_k/kernel`` keys."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable .npz file: {err}") from err
    with data:
        keys = list(data.keys())
        w_keys = sorted((k for k in keys if re.fullmatch(r"W\d+", k)), key=lambda k: int(k[1:]))
        if w_keys:
            expected = [f"W{r}" for r in range(len(w_keys))]
            if w_keys != expected:
                missing = sorted(set(expected) - set(w_keys), key=lambda k: int(k[1:]))
                raise ValueError(f"{path}: weight keys must be W0..Wl in order; missing {missing}")
            weights = [data[k] for k in w_keys]
            b_keys = [f"b{r}" for r in range(len(w_keys))]
            biases = [data[k] for k in b_keys] if all(k in keys for k in b_keys) else None
            return weights, biases
        dense = {}
        for k in keys:
            m = re.fullmatch(r"(?:params/)?([^/]+)/(kernel|bias)", k)
            if m:
                dense.setdefault(m.group(1), {})[m.group(2)] = data[k]
        if dense:
            # one ordering of the layers for weights and biases: bounds.dense_layers
            return bounds.weights_from_dense_params(dense), bounds.biases_from_dense_params(dense)
        raise ValueError(
            f"{path} has no weight keys: expected W0, W1, ... (out x in) or "
            f"params/Dense_0/kernel, ...; found {keys[:10]}"
        )


def format_table(
    values: dict[str, float], times: dict[str, float], lower: float | None, lower_time: float
) -> str:
    ref = values["K_star"]
    lines = [f"{'bound':<8} {'value':>14} {'time (s)':>10} {'/ K_star':>10}"]
    for name, value in values.items():
        lines.append(f"{name:<8} {value:>14.6g} {times[name]:>10.4f} {value / ref:>10.4f}")
    if lower is not None:
        lines.append(f"{'lower':<8} {lower:>14.6g} {lower_time:>10.4f} {lower / ref:>10.4f}")
        best = min(values.values())
        lines.append(f"Lipschitz constant in [{lower:.6g}, {best:.6g}]")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        p = bounds.parse_norm(args.norm)
        weights, biases = load_npz(args.path)
        times: dict[str, float] = {}
        values = bounds.lipschitz_bounds(
            weights,
            p,
            max_patterns=args.max_patterns,
            max_subsets=args.max_subsets,
            timings=times,
        )
        lower, lower_time = None, 0.0
        if not args.no_lower:
            start = time.perf_counter()
            lower = bounds.lipschitz_lower_bound(
                weights, p, biases, num_starts=args.starts, num_steps=args.steps
            )
            lower_time = time.perf_counter() - start
    except (FileNotFoundError, ValueError, TypeError) as err:
        print(f"lipjax bounds: error: {err}", file=sys.stderr)
        return 2
    shapes = " -> ".join(str(w.shape[1]) for w in bounds.validate_weights(weights))
    shapes += f" -> {np.shape(weights[-1])[0]}"
    norm_name = "inf" if p == math.inf else str(int(p))
    print(f"network: {len(weights)} matrices, widths {shapes}; norm l{norm_name}")
    print(format_table(values, times, lower, lower_time))
    if args.json:
        payload = {
            "path": args.path,
            "norm": norm_name,
            "bounds": values,
            "times_s": times,
            "lower": lower,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0
