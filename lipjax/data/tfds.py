"""Optional TensorFlow Datasets source (``pip install lipjax[tfds]``).

TensorFlow is imported only when this source is used, never by the core
package. For offline machines pass ``data_dir`` pointing at an already
prepared TFDS directory and ``download=False``.
"""

from __future__ import annotations

import numpy as np

TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")


def load_tfds(
    name: str, split: str, data_dir: str | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Loads a whole TFDS split as ``(uint8 NHWC images, int32 labels, class names)``."""
    if name not in TFDS_NAMES:
        raise ValueError(f"unknown TFDS dataset {name!r}; supported: {', '.join(TFDS_NAMES)}")
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError(
            "the 'tfds' data source needs TensorFlow Datasets: pip install 'lipjax[tfds]'"
        ) from err
    builder_kwargs = {"data_dir": data_dir} if data_dir else {}
    ds, info = tfds.load(
        name,
        split=split,
        batch_size=-1,
        as_supervised=True,
        with_info=True,
        download=download,
        **builder_kwargs,
    )
    images, labels = tfds.as_numpy(ds)
    names = None
    try:
        names = list(info.features["label"].names)
    except Exception:  # noqa: BLE001 - names are optional metadata
        names = None
    return np.asarray(images, np.uint8), np.asarray(labels, np.int32), names
