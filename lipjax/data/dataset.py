"""The in-memory dataset split and the functions that derive new splits from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["Dataset", "channel_stats", "select_classes", "to_float"]


def to_float(images: np.ndarray) -> np.ndarray:
    """``uint8`` images to ``float32`` in ``[0, 1]`` (float input is returned as float32)."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.asarray(images, np.float32)


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
