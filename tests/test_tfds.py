"""The TensorFlow Datasets source, on real TFDS files prepared offline by the test.

A tiny MNIST is written as raw IDX files, turned into TFDS's on-disk format
(``mnist/3.0.1/*.tfrecord`` + ``dataset_info.json``) by TFDS's own MNIST builder
pointed at those files, then read back through ``lipjax.data.load(...,
source="tfds")``, which opens it with the registered ``mnist`` builder like any
prepared dataset. Needs the ``tfds`` extra (``pip install ".[test,tfds]"``).
"""

import chex
import numpy as np
import pytest

from lipjax import data
from lipjax.data.tfds import load_tfds

# A clean skip, not a collection error, where the optional extra is not installed.
tfds = pytest.importorskip("tensorflow_datasets", reason="needs the tfds extra: pip install '.[test,tfds]'")
tfds_mnist = pytest.importorskip("tensorflow_datasets.image_classification.mnist")

SIZES = {"train": 20, "test": 7}


def _write_raw_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """``(data_dir, {split: (images (N, 28, 28), labels (N,))})`` of a prepared tiny MNIST."""
    root = tmp_path_factory.mktemp("tfds")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in SIZES.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _write_raw_idx(root / f"{split}-images", images)
        _write_raw_idx(root / f"{split}-labels", labels)
        arrays[split] = (images, labels)

    class LocalMnist(tfds_mnist.MNIST, skip_registration=True):
        """TFDS's MNIST builder reading the files above instead of downloading."""

        name = "mnist"

        def _split_generators(self, dl_manager):
            del dl_manager
            return [
                tfds.core.SplitGenerator(
                    name=split,
                    gen_kwargs=dict(
                        num_examples=n,
                        data_path=str(root / f"{split}-images"),
                        label_path=str(root / f"{split}-labels"),
                    ),
                )
                for split, n in SIZES.items()
            ]

    data_dir = root / "tfds_data"
    LocalMnist(data_dir=str(data_dir)).download_and_prepare()
    assert list((data_dir / "mnist" / "3.0.1").glob("mnist-train.tfrecord*"))
    return data_dir, arrays


def _canonical(images, labels):
    """Examples sorted by their pixels: TFDS stores a split in its own shuffled order."""
    flat = np.asarray(images).reshape(len(images), -1)
    order = np.lexsort(flat.T[::-1])
    return flat[order], np.asarray(labels, np.int32)[order]


@pytest.mark.parametrize("split", ["train", "test"])
def test_tfds_source_reads_the_prepared_split(prepared, split):
    data_dir, arrays = prepared
    ds = data.load("mnist", split, source="tfds", data_dir=data_dir)
    n = SIZES[split]
    chex.assert_shape(ds.images, (n, 28, 28, 1))
    chex.assert_shape(ds.labels, (n,))
    assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int32
    assert ds.num_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    got, want = _canonical(ds.images, ds.labels), _canonical(*arrays[split])
    chex.assert_trees_all_equal(got, want)


def test_tfds_streams_in_batches_of_any_size(prepared):
    data_dir, _ = prepared
    # 20 examples in batches of 3: six full batches and a remainder of 2.
    small = load_tfds("mnist", "train", data_dir=data_dir, read_batch_size=3)
    whole = load_tfds("mnist", "train", data_dir=data_dir, read_batch_size=1024)
    chex.assert_trees_all_equal(small, whole)
    with pytest.raises(ValueError, match="read_batch_size"):
        load_tfds("mnist", "train", data_dir=data_dir, read_batch_size=0)


def test_tfds_errors_name_the_problem(prepared, tmp_path):
    data_dir, _ = prepared
    with pytest.raises(data.DataError, match="not prepared in .*tfds build mnist"):
        data.load("mnist", "train", source="tfds", data_dir=tmp_path / "empty")
    with pytest.raises(data.DataError, match="no split 'validation'"):
        load_tfds("mnist", "validation", data_dir=data_dir)
    with pytest.raises(data.DataError, match="unknown TFDS dataset 'svhn'"):
        load_tfds("svhn", "train", data_dir=data_dir)
