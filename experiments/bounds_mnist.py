"""Lipschitz bounds of a small MNIST CNN, trained normally and with a Lipschitz penalty.

Analogue of the Després-Pintore MNIST table (their models A/B/C, "explicit"
and "implicit" treatments of max pooling; here there is no pooling, the convs
are strided, so every layer is an explicit matrix). Network (input in [0, 1]):

    28x28x1 -> conv 4x4, 8 channels, stride 2, SAME -> ReLU   (W0: 1568 x 784)
            -> conv 4x4, 16 channels, stride 2, SAME -> ReLU  (W1:  784 x 1568)
            -> dense 10                                        (W2:   10 x 784)

Two trainings with Adam (``--epochs``, batch 128): plain cross-entropy, and
cross-entropy + ``lam * prod_r ||W_r||_inf`` (the l-inf K_star, computed
exactly from the kernels: the l-inf norm of a conv matrix is the largest
per-output-channel sum of |kernel| since SAME padding leaves interior outputs
with the full kernel). Prints test accuracy, K*, K1, K3, K4, K5 in l1 and
l-inf, and the lower bound (gradient ascent, 64 starts).

    python experiments/bounds_mnist.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lipjax import bounds as B

FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(data_dir: str):
    missing = [f for f in FILES.values() if not os.path.exists(os.path.join(data_dir, f))]
    if missing:
        sys.exit(
            f"MNIST files not found in {data_dir!r}: missing {missing}. "
            "Pass --data-dir pointing to the four IDX .gz files."
        )
    arrays = {k: read_idx(os.path.join(data_dir, f)) for k, f in FILES.items()}
    to_x = lambda a: (a.astype(np.float32) / 255.0)[..., None]  # noqa: E731
    return (
        (to_x(arrays["train_x"]), arrays["train_y"].astype(np.int32)),
        (to_x(arrays["test_x"]), arrays["test_y"].astype(np.int32)),
    )


class SmallCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (4, 4), strides=(2, 2), padding="SAME")(x))
        x = nn.relu(nn.Conv(16, (4, 4), strides=(2, 2), padding="SAME")(x))
        return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def linf_kstar(params) -> jnp.ndarray:
    """prod_r ||W_r||_inf from the kernels (largest |kernel| sum per output unit)."""
    total = 1.0
    for name in ("Conv_0", "Conv_1", "Dense_0"):
        k = params[name]["kernel"]
        total = total * jnp.max(jnp.sum(jnp.abs(k.reshape(-1, k.shape[-1])), axis=0))
    return total


def train(data, epochs: int, lam: float, seed: int):
    (x_train, y_train), _ = data
    model = SmallCNN()
    params = model.init(jax.random.PRNGKey(seed), x_train[:1])["params"]
    opt = optax.adam(1e-3)
    state = opt.init(params)

    def loss_fn(params, x, y):
        logits = model.apply({"params": params}, x)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce + lam * linf_kstar(params)

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for i in range(0, len(order) - 127, 128):
            idx = order[i : i + 128]
            params, state = step(params, state, x_train[idx], y_train[idx])
    return model, {"params": params}


def accuracy(model, variables, data) -> float:
    _, (x_test, y_test) = data
    logits = jax.jit(lambda x: model.apply(variables, x))(x_test)
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--data-dir", default=os.path.join(here, "..", "..", "shared", "data", "mnist"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lam", type=float, default=0.01, help="weight of the K*_inf penalty")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_mnist(args.data_dir)
    rows = []
    for label, lam in (("plain", 0.0), (f"penalty {args.lam:g}", args.lam)):
        start = time.perf_counter()
        model, variables = train(data, args.epochs, lam, args.seed)
        train_s = time.perf_counter() - start
        acc = accuracy(model, variables, data)
        ws, bs = B.weights_from_flax(model, variables, (28, 28, 1))
        row = {"model": label, "acc": acc, "train_s": train_s}
        start = time.perf_counter()
        for p, tag in ((1.0, "l1"), (math.inf, "linf")):
            vals = B.lipschitz_bounds(ws, p, max_patterns=0)
            row.update({f"{tag} {k}": v for k, v in vals.items()})
            row[f"{tag} lower"] = B.lipschitz_lower_bound(ws, p, bs, num_starts=64, num_steps=100, scale=0.5)
        row["bounds_s"] = time.perf_counter() - start
        rows.append(row)
    shapes = " -> ".join(str(w.shape[1]) for w in ws) + f" -> {ws[-1].shape[0]}"
    print(f"SmallCNN {shapes}, {args.epochs} epoch(s), Adam 1e-3, batch 128, seed {args.seed}")
    names = ("K_star", "K1", "K3", "K4", "K5", "lower")
    for tag in ("l1", "linf"):
        print(f"\n{tag}")
        print(f"{'model':<14} {'test acc':>8}" + "".join(f"{n:>11}" for n in names))
        for row in rows:
            cells = "".join(f"{row[f'{tag} {n}']:>11.4g}" for n in names)
            print(f"{row['model']:<14} {row['acc']:>8.4f}" + cells)
    print(
        "\ntimes: "
        + ", ".join(f"{r['model']}: train {r['train_s']:.0f} s, bounds {r['bounds_s']:.1f} s" for r in rows)
    )


if __name__ == "__main__":
    main()
