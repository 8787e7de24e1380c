"""Known datasets: image shape, classes, certification radii and channel statistics.

This module is the one place where dataset constants live; the models, the
configs and the data sources import them from here.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR_EPS",
    "DATASETS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "DatasetInfo",
]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a known dataset looks like and how it is certified.

    Attributes:
      image_shape: ``(H, W, C)`` of one image.
      num_classes: number of classes.
      eps: the l2 radii (pixels in ``[0, 1]``) at which certified accuracy is reported.
      mean: per-channel mean of the training images scaled to ``[0, 1]``.
      std: per-channel standard deviation of the same.
      class_names: names of the classes in label order (empty when unnamed).
    """

    image_shape: tuple[int, int, int]
    num_classes: int
    eps: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()


# Channel statistics of the training split, pixels in [0, 1] (population std).
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
# CIFAR-10's std is about (0.24703, 0.24349, 0.26159): 0.2470 when rounded to four places.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# The radii of Meunier et al. (2022) for CIFAR: 36/255, 72/255, 108/255.
CIFAR_EPS = (36 / 255, 72 / 255, 108 / 255)

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo((28, 28, 1), 10, (0.5, 1.0, 1.58), MNIST_MEAN, MNIST_STD),
    "fashion_mnist": DatasetInfo((28, 28, 1), 10, (0.1, 0.5, 1.0), FASHION_MNIST_MEAN, FASHION_MNIST_STD),
    "cifar10": DatasetInfo((32, 32, 3), 10, CIFAR_EPS, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES),
    "cifar100": DatasetInfo((32, 32, 3), 100, CIFAR_EPS, CIFAR100_MEAN, CIFAR100_STD),
}
