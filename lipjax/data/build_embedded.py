"""Builds ``lipjax/data/mnist_subset.npz``, the embedded default dataset.

Usage: ``python -m lipjax.data.build_embedded ../shared/data/mnist [--train 20000]``.
Keeps the first ``--train`` training images (original order) and all 10,000 test
images, pixels unchanged: each split's uint8 pixels are xz-compressed (about 135
bytes per image, a fifth smaller than zlib) and stored with the labels and the
provenance string in an ``.npz``.
"""

from __future__ import annotations

import argparse
import lzma

import numpy as np

from lipjax.data import EMBEDDED_PATH, EMBEDDED_PROVENANCE, EMBEDDED_TRAIN
from lipjax.data.readers import read_idx_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir")
    parser.add_argument("--train", type=int, default=EMBEDDED_TRAIN)
    parser.add_argument("--out", default=str(EMBEDDED_PATH))
    args = parser.parse_args(argv)
    x_train, y_train = read_idx_split(args.mnist_dir, "train")
    x_test, y_test = read_idx_split(args.mnist_dir, "test")
    arrays = {"provenance": np.array(EMBEDDED_PROVENANCE.format(train=args.train))}
    for split, x, y in (("train", x_train[: args.train], y_train[: args.train]), ("test", x_test, y_test)):
        pixels = np.ascontiguousarray(x[..., 0], np.uint8)
        packed = lzma.compress(pixels.tobytes(), format=lzma.FORMAT_XZ, preset=9)
        arrays[f"x_{split}_xz"] = np.frombuffer(packed, np.uint8)
        arrays[f"x_{split}_shape"] = np.asarray(pixels.shape, np.int64)
        arrays[f"y_{split}"] = y.astype(np.uint8)
    np.savez(args.out, **arrays)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
