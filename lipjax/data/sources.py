"""Where a split comes from: the embedded MNIST subset, local files, TFDS or synthetic images.

:func:`load` picks the source, reads the split and checks it against the
dataset's registry entry (:data:`lipjax.data.DATASETS`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lipjax.data.dataset import Dataset
from lipjax.data.readers import DataError, check_arrays, read_idx_split, read_image_folder, read_npz
from lipjax.data.registry import DATASETS

__all__ = [
    "EMBEDDED_PATH",
    "EMBEDDED_PROVENANCE",
    "EMBEDDED_TRAIN",
    "SOURCES",
    "load",
    "read_embedded",
    "synthetic",
]

EMBEDDED_PATH = Path(__file__).with_name("mnist_subset.npz")
EMBEDDED_TRAIN = 30000
EMBEDDED_PROVENANCE = (
    "MNIST (LeCun, Cortes, Burges; http://yann.lecun.com/exdb/mnist/): the first "
    "{train} images of the original training set and all 10,000 test images, in "
    "their original order, pixels unchanged (uint8, xz-compressed). Built by "
    "`python -m lipjax.data.build_embedded <folder with the MNIST IDX files>`."
)

SOURCES = ("auto", "embedded", "idx", "folder", "npz", "tfds", "synthetic")


def read_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST subset's ``split`` as ``(uint8 (N, 28, 28, 1), int32 (N,))``."""
    import lzma

    with np.load(EMBEDDED_PATH, allow_pickle=False) as f:
        shape = tuple(int(s) for s in f[f"x_{split}_shape"])
        pixels = np.frombuffer(lzma.decompress(f[f"x_{split}_xz"].tobytes()), np.uint8)
        labels = f[f"y_{split}"].astype(np.int32)
    return pixels.reshape(*shape, 1), labels


def synthetic(name: str, split: str, size: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic, learnable fake images shaped like dataset ``name``.

    Each class has a random template; an image is its class template mixed with
    noise. For smoke runs and benchmarks of the code path only (no real data).
    """
    info = DATASETS[name]
    size = size or (512 if split == "train" else 256)
    rng = np.random.default_rng([seed, 0])
    templates = rng.uniform(0, 255, (info.num_classes, *info.image_shape))
    rng = np.random.default_rng([seed, 1 if split == "train" else 2])
    labels = rng.integers(0, info.num_classes, size).astype(np.int32)
    noise = rng.uniform(0, 255, (size, *info.image_shape))
    images = np.clip(0.6 * templates[labels] + 0.4 * noise, 0, 255).astype(np.uint8)
    return images, labels


def _guess_source(name: str, path: str | None) -> str:
    if path is None:
        if name == "mnist":
            return "embedded"
        raise DataError(
            f"dataset {name!r} needs a path (IDX folder, image folder or tarball, .npz) "
            "or source='tfds'; only 'mnist' has an embedded default"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"dataset path does not exist: {str(path)!r}")
    if p.suffix == ".npz":
        return "npz"
    if p.is_file():
        return "folder"  # a tar archive of an image folder
    if any(p.glob("*-idx*-ubyte*")) or any(p.glob("*.idx*")):
        return "idx"
    return "folder"


def load(
    name: str,
    split: str,
    *,
    source: str = "auto",
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Dataset:
    """Loads one split (``"train"`` or ``"test"``) of a dataset.

    Args:
      name: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, or any
        name for local files (then the shape is taken from the files).
      split: ``"train"`` or ``"test"``.
      source: one of ``auto, embedded, idx, folder, npz, tfds, synthetic``; ``auto`` picks
        ``embedded`` for MNIST without a path, otherwise guesses from ``path``.
      path: file or folder for the local sources.
      data_dir: TFDS data directory (for offline use).
      download: whether TFDS may download (default off: nothing downloads
        unless asked).

    Returns:
      A :class:`Dataset`.

    Raises:
      FileNotFoundError: a path that does not exist.
      DataError: unknown dataset/source/split, label/image count mismatch,
        images of the wrong shape, a TFDS dataset not prepared in ``data_dir``.
    """
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r}; use one of {', '.join(SOURCES)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    path = None if path in (None, "") else str(path)
    if source == "auto":
        source = _guess_source(name, path)
    info = DATASETS.get(name)
    if info is None and source in ("embedded", "tfds", "synthetic"):
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    names: Sequence[str] | None = None
    if source == "embedded":
        if name != "mnist":
            raise DataError(f"only 'mnist' is embedded in the package, not {name!r}")
        images, labels = read_embedded(split)
    elif source == "idx":
        if path is None:
            raise DataError("source 'idx' needs a path to a folder of IDX files")
        images, labels = read_idx_split(path, split)
    elif source == "folder":
        if path is None:
            raise DataError("source 'folder' needs a path to a folder or tar archive")
        classes = list(info.class_names) if info and info.class_names else None
        images, labels, names = read_image_folder(path, split, classes)
    elif source == "synthetic":
        images, labels = synthetic(name, split, int(path) if path else None)
    elif source == "npz":
        if path is None:
            raise DataError("source 'npz' needs a path to a .npz file")
        images, labels, names = read_npz(path, split)
    else:
        from lipjax.data.tfds import load_tfds  # TensorFlow is imported only here

        images, labels, names = load_tfds(name, split, data_dir=data_dir, download=download)
    images, labels = check_arrays(
        images, labels, source=f"{name} ({source})", image_shape=info.image_shape if info else None
    )
    if images.dtype != np.uint8:
        images = np.asarray(images, np.float32)
    num_classes = info.num_classes if info else int(labels.max()) + 1
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{name}: labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )
    if names is None and info is not None:
        names = info.class_names
    return Dataset(images, labels, num_classes, name, tuple(names or ()))
