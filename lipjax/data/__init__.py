"""Datasets for lipjax: the embedded MNIST subset, local files and TFDS.

Sources (``load(name, split, source=..., path=...)``):

- ``"embedded"``: a subset of MNIST shipped inside the package
  (``lipjax/data/mnist_subset.npz``, see :data:`EMBEDDED_PROVENANCE`), so that
  the default command runs offline on a fresh machine.
- ``"idx"``: a folder of MNIST-format IDX files (gzip-compressed or not).
- ``"folder"``: images laid out as ``<split>/<class>/<file>`` in a folder or a
  ``.tar``/``.tar.gz`` archive (e.g. the CIFAR-10 JPEG tarball).
- ``"npz"``: numpy arrays (``x_train``/``y_train``/``x_test``/``y_test`` ...).
- ``"tfds"``: TensorFlow Datasets (optional extra), with ``data_dir``.
- ``"synthetic"``: deterministic fake images shaped like a known dataset, for
  smoke runs and benchmarks of the code path (``path`` may give the size).

Images are kept as ``uint8`` NHWC arrays; the training step scales them to
``[0, 1]`` floats. Input mean/std is not applied here: it is a layer of the
model (``lipjax.models``), so its effect on the Lipschitz constant enters the
certified constant of the exported network.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lipjax.data.augment import augment, random_crop, random_flip
from lipjax.data.readers import (
    DataError,
    check_arrays,
    read_idx,
    read_idx_split,
    read_image_folder,
    read_image_tar,
    read_npz,
)

__all__ = [
    "DATASETS",
    "EMBEDDED_PATH",
    "EMBEDDED_PROVENANCE",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "augment",
    "batches",
    "channel_stats",
    "check_arrays",
    "epoch_permutation",
    "load",
    "random_crop",
    "random_flip",
    "read_idx",
    "read_idx_split",
    "read_image_folder",
    "read_image_tar",
    "read_npz",
    "select_classes",
]

EMBEDDED_PATH = Path(__file__).with_name("mnist_subset.npz")
EMBEDDED_TRAIN = 30000
EMBEDDED_PROVENANCE = (
    "MNIST (LeCun, Cortes, Burges; http://yann.lecun.com/exdb/mnist/): the first "
    "{train} images of the original training set and all 10,000 test images, in "
    "their original order, pixels unchanged (uint8, xz-compressed). Built by "
    "`python -m lipjax.data.build_embedded <folder with the MNIST IDX files>`."
)


def read_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The embedded MNIST subset's ``split`` as ``(uint8 (N, 28, 28, 1), int32 (N,))``."""
    import lzma

    with np.load(EMBEDDED_PATH, allow_pickle=False) as f:
        shape = tuple(int(s) for s in f[f"x_{split}_shape"])
        pixels = np.frombuffer(lzma.decompress(f[f"x_{split}_xz"].tobytes()), np.uint8)
        labels = f[f"y_{split}"].astype(np.int32)
    return pixels.reshape(*shape, 1), labels


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a known dataset looks like and how it is certified."""

    image_shape: tuple[int, int, int]
    num_classes: int
    eps: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()


_CIFAR_EPS = (36 / 255, 72 / 255, 108 / 255)
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo((28, 28, 1), 10, (0.5, 1.0, 1.58), (0.1307,), (0.3081,)),
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, (0.1, 0.5, 1.0), (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo(
        (32, 32, 3),
        10,
        _CIFAR_EPS,
        (0.4914, 0.4822, 0.4465),
        (0.2471, 0.2435, 0.2616),
        (
            "airplane", "automobile", "bird", "cat", "deer",
            "dog", "frog", "horse", "ship", "truck",
        ),
    ),
    "cifar100": DatasetInfo(
        (32, 32, 3), 100, _CIFAR_EPS, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    ),
}  # fmt: skip

SOURCES = ("auto", "embedded", "idx", "folder", "npz", "tfds", "synthetic")


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


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One split of a dataset held in memory.

    Attributes:
      images: ``uint8`` array ``(N, H, W, C)``.
      labels: ``int32`` array ``(N,)`` with values in ``[0, num_classes)``.
      num_classes: number of classes.
      name: dataset name (``mnist``, ``cifar10``, ...).
      class_names: optional names of the classes, in label order.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = ""
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def float_images(self) -> np.ndarray:
        """Images as ``float32`` in ``[0, 1]``."""
        return to_float(self.images)

    def take(self, n: int) -> Dataset:
        """The first ``n`` examples."""
        return dataclasses.replace(self, images=self.images[:n], labels=self.labels[:n])


def to_float(images: np.ndarray) -> np.ndarray:
    """``uint8`` images to ``float32`` in ``[0, 1]`` (float input is returned as float32)."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.asarray(images, np.float32)


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
    data_dir: str | None = None,
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
        images of the wrong shape.
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
        from lipjax.data.tfds import load_tfds

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


def select_classes(ds: Dataset, classes: Sequence[int]) -> Dataset:
    """Keeps the examples of ``classes`` and relabels ``classes[i]`` as ``i``.

    For a binary task (e.g. the deel-lip MNIST 0-vs-8 demo, ``classes=(0, 8)``)
    label 1 is ``classes[1]``.
    """
    classes = list(classes)
    mask = np.isin(ds.labels, classes)
    lookup = np.full(max(ds.num_classes, max(classes) + 1), -1, np.int32)
    lookup[classes] = np.arange(len(classes), dtype=np.int32)
    names = tuple(ds.class_names[c] for c in classes) if ds.class_names else tuple(map(str, classes))
    return Dataset(ds.images[mask], lookup[ds.labels[mask]], len(classes), ds.name, names)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of images scaled to ``[0, 1]``."""
    x = to_float(images).reshape(-1, images.shape[-1]).astype(np.float64)
    return tuple(map(float, x.mean(0))), tuple(map(float, x.std(0)))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffling order of epoch ``epoch``: a pure function of ``(seed, epoch)``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batches(
    ds: Dataset,
    batch_size: int,
    *,
    seed: int | None = None,
    epoch: int = 0,
    start: int = 0,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields ``(images, labels)`` batches of one epoch.

    Args:
      ds: the dataset.
      batch_size: examples per batch.
      seed: shuffle with :func:`epoch_permutation` when given; keep order if None.
      epoch: epoch number (selects the permutation).
      start: index of the first batch to yield (to resume mid-epoch).
      drop_remainder: drop the last incomplete batch.
    """
    n = len(ds)
    order = epoch_permutation(n, seed, epoch) if seed is not None else np.arange(n)
    stop = n - n % batch_size if drop_remainder else n
    for i in range(start * batch_size, stop, batch_size):
        idx = np.sort(order[i : i + batch_size]) if seed is not None else order[i : i + batch_size]
        yield ds.images[idx], ds.labels[idx]
