"""Builds ``lipjax/data/mnist_subset.npz``, the embedded default dataset.

Usage: ``python -m lipjax.data.build_embedded ../shared/data/mnist [--train 20000]``.
Keeps the first ``--train`` training images (original order) and all 10,000 test
images, pixels unchanged, in a compressed npz with its provenance string.
"""

from __future__ import annotations

import argparse

import numpy as np

from lipjax.data import EMBEDDED_PATH, EMBEDDED_PROVENANCE
from lipjax.data.readers import read_idx_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir")
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--out", default=str(EMBEDDED_PATH))
    args = parser.parse_args(argv)
    x_train, y_train = read_idx_split(args.mnist_dir, "train")
    x_test, y_test = read_idx_split(args.mnist_dir, "test")
    np.savez_compressed(
        args.out,
        x_train=x_train[: args.train, :, :, 0],
        y_train=y_train[: args.train].astype(np.uint8),
        x_test=x_test[:, :, :, 0],
        y_test=y_test.astype(np.uint8),
        provenance=np.array(EMBEDDED_PROVENANCE),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
