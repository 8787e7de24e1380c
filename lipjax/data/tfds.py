"""Optional TensorFlow Datasets source (``pip install 'lipjax[tfds]'``).

TensorFlow is imported only when this source is used, never by the core
package. A split is read from TFDS's prepared files (``data_dir``) and streamed
through ``tf.data`` in batches of ``read_batch_size`` examples into numpy.

Why not ``tfds.load(..., batch_size=-1)``: that asks TFDS for the whole split as
one tensor, which TFDS builds with ``padded_batch(total_num_examples or
sys.maxsize)``. When the split sizes are not recorded in the dataset info (as
with ``tfds.testing.mock_data``) the batch size is ``sys.maxsize``, and
TensorFlow 2.21's batching kernel aborts the whole Python process
(``std::length_error`` from ``vector::reserve``: "Fatal Python error:
Aborted"). Fixed-size batches avoid that and never hold two copies of a large
split in TensorFlow.

Offline use: prepare the dataset once (``tfds build cifar10 --data_dir DIR``)
and pass ``data_dir=DIR`` with ``download=False`` (the default).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lipjax.data.readers import DataError

__all__ = ["TFDS_NAMES", "load_tfds"]

TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")


def _import_tfds() -> Any:
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError(
            "the 'tfds' data source needs TensorFlow Datasets: pip install 'lipjax[tfds]'"
        ) from err
    # TensorFlow would otherwise reserve most of a GPU's memory on first use and
    # leave JAX, which trains on it, without room; tf.data needs only the CPU.
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices in this process
        pass
    return tfds


def load_tfds(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    read_batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Reads a TFDS split as ``(uint8 NHWC images, int32 labels, class names)``.

    Args:
      name: one of :data:`TFDS_NAMES`.
      split: a split of the dataset (``"train"``, ``"test"``).
      data_dir: TFDS data directory; TFDS's default (``~/tensorflow_datasets``) if None.
      download: download and prepare the dataset when it is not prepared yet.
      read_batch_size: examples per ``tf.data`` batch while streaming the split.

    Returns:
      ``(images, labels, class_names)``; ``class_names`` is None when TFDS has none.

    Raises:
      DataError: an unknown dataset or split, or a dataset not prepared in
        ``data_dir`` while ``download`` is False.
    """
    if name not in TFDS_NAMES:
        raise DataError(f"unknown TFDS dataset {name!r}; supported: {', '.join(TFDS_NAMES)}")
    if read_batch_size < 1:
        raise ValueError(f"read_batch_size must be a positive integer, got {read_batch_size}")
    tfds = _import_tfds()
    builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    if not builder.is_prepared():
        if not download:
            raise DataError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r}; prepare it once "
                f"with `tfds build {name} --data_dir DIR` and pass that data_dir, or allow "
                "download=True"
            )
        builder.download_and_prepare()
    if split not in builder.info.splits:
        raise DataError(
            f"TFDS dataset {name!r} has no split {split!r}; it has {', '.join(builder.info.splits)}"
        )
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    chunks = list(tfds.as_numpy(ds.batch(read_batch_size)))
    if chunks:
        images = np.concatenate([x for x, _ in chunks]).astype(np.uint8, copy=False)
        labels = np.concatenate([y for _, y in chunks]).astype(np.int32, copy=False)
    else:
        images = np.zeros((0, *builder.info.features["image"].shape), np.uint8)
        labels = np.zeros((0,), np.int32)
    label_feature = builder.info.features["label"]
    names = list(label_feature.names) if getattr(label_feature, "names", None) else None
    return images, labels, names
