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

Modules: :mod:`~lipjax.data.registry` (known datasets and their constants),
:mod:`~lipjax.data.sources` (:func:`load` and the sources),
:mod:`~lipjax.data.readers` (local file formats), :mod:`~lipjax.data.tfds`,
:mod:`~lipjax.data.dataset` (the in-memory split), :mod:`~lipjax.data.batching`
and :mod:`~lipjax.data.augment`. Their public names are re-exported here.
"""

from lipjax.data.augment import augment, random_crop, random_flip
from lipjax.data.batching import batches, epoch_permutation
from lipjax.data.dataset import Dataset, channel_stats, select_classes, to_float
from lipjax.data.readers import (
    DataError,
    check_arrays,
    read_idx,
    read_idx_split,
    read_image_folder,
    read_image_tar,
    read_npz,
)
from lipjax.data.registry import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    DATASETS,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
    DatasetInfo,
)
from lipjax.data.sources import (
    EMBEDDED_PATH,
    EMBEDDED_PROVENANCE,
    EMBEDDED_TRAIN,
    SOURCES,
    load,
    read_embedded,
    synthetic,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "DATASETS",
    "EMBEDDED_PATH",
    "EMBEDDED_PROVENANCE",
    "EMBEDDED_TRAIN",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "SOURCES",
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
    "read_embedded",
    "read_idx",
    "read_idx_split",
    "read_image_folder",
    "read_image_tar",
    "read_npz",
    "select_classes",
    "synthetic",
    "to_float",
]
