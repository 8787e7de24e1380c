"""Data: readers on real tiny files, errors, embedded subset, augmentation."""

import gzip
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from lipjax import data


def _write_idx(path, array, gz):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    payload = header + array.tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    x, y = _mnist_like(5)
    xt, yt = _mnist_like(3, 1)
    _write_idx(tmp_path / "train-images-idx3-ubyte", x, gz)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y, gz)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", xt, gz)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", yt, gz)
    ds = data.load("mnist", "train", path=tmp_path)
    chex.assert_shape(ds.images, (5, 28, 28, 1))
    assert ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[..., 0], x)
    np.testing.assert_array_equal(ds.labels, y)
    test = data.load("mnist", "test", source="idx", path=tmp_path)
    np.testing.assert_array_equal(test.labels, yt)


def test_idx_errors(tmp_path):
    x, y = _mnist_like(5)
    _write_idx(tmp_path / "train-images-idx3-ubyte", x, False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", y[:4], False)
    with pytest.raises(data.DataError, match="5 images but 4 labels"):
        data.load("mnist", "train", path=tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        data.load("mnist", "test", source="idx", path=tmp_path)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(data.DataError, match="magic"):
        data.read_idx(tmp_path / "bad")
    # truncated payload
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(data.DataError, match="bytes"):
        data.read_idx(tmp_path / "short")


def test_errors_for_paths_names_and_shapes(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load("mnist", "train", path=tmp_path / "nope")
    with pytest.raises(data.DataError, match="unknown dataset"):
        data.load("imagenet", "train", source="tfds")
    with pytest.raises(data.DataError, match="unknown split"):
        data.load("mnist", "validation")
    with pytest.raises(data.DataError, match="unknown data source"):
        data.load("mnist", "train", source="ftp")
    np.savez(tmp_path / "a.npz", x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.zeros(4, int))
    with pytest.raises(data.DataError, match=r"expected \(28, 28, 1\)"):
        data.load("mnist", "train", path=tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(3, int))
    with pytest.raises(data.DataError, match="4 images but 3 labels"):
        data.load("mnist", "train", path=tmp_path / "b.npz")
    with pytest.raises(data.DataError, match="x_test"):
        data.load("mnist", "test", path=tmp_path / "b.npz")


def test_npz_reader(tmp_path):
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.savez(tmp_path / "d.npz", x_test=x, y_test=np.array([3, 7]))
    ds = data.load("mnist", "test", path=tmp_path / "d.npz")
    assert ds.images.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(ds.labels, [3, 7])


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_image_folder_and_tar(tmp_path):
    rng = np.random.default_rng(0)
    images = {}
    root = tmp_path / "ds"
    for cls in ("cat", "ant"):
        for i in range(2):
            arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            images[(cls, i)] = arr
            p = root / "train" / cls / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_png(arr))
    ds = data.load("toy", "train", source="folder", path=root)
    assert ds.class_names == ("ant", "cat") and ds.num_classes == 2
    np.testing.assert_array_equal(ds.labels, [0, 1, 0, 1])  # classes interleaved: take(n) holds each
    np.testing.assert_array_equal(ds.images[1], images[("cat", 0)])  # PNG is lossless
    np.testing.assert_array_equal(ds.images[2], images[("ant", 1)])
    tar_path = tmp_path / "ds.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(root, arcname="toy")
    ds2 = data.load("toy", "train", path=tar_path)
    np.testing.assert_array_equal(ds2.images, ds.images)
    np.testing.assert_array_equal(ds2.labels, ds.labels)
    with pytest.raises(data.DataError, match="no images"):
        data.load("toy", "test", path=tar_path)
    # an image of another size
    (root / "train" / "cat" / "9.png").write_bytes(_png(np.zeros((9, 8, 3), np.uint8)))
    with pytest.raises(data.DataError, match="shape"):
        data.load("toy", "train", source="folder", path=root)


def test_embedded_mnist_subset():
    train = data.load("mnist", "train")
    test = data.load("mnist", "test")
    assert train.images.shape == (data.EMBEDDED_TRAIN, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.images.dtype == np.uint8 and set(np.unique(test.labels)) == set(range(10))
    # Original MNIST order: the first training labels are 5, 0, 4, 1, 9.
    np.testing.assert_array_equal(train.labels[:5], [5, 0, 4, 1, 9])
    np.testing.assert_array_equal(test.labels[:5], [7, 2, 1, 0, 4])
    with np.load(data.EMBEDDED_PATH) as f:
        assert "MNIST" in str(f["provenance"])
    assert data.EMBEDDED_PATH.stat().st_size < 6_000_000


def test_select_classes_and_batches():
    ds = data.load("mnist", "test").take(500)
    binary = data.select_classes(ds, (0, 8))
    assert set(np.unique(binary.labels)) == {0, 1}
    assert np.sum(binary.labels == 1) == np.sum(ds.labels == 8)
    b1 = list(data.batches(ds, 64, seed=3, epoch=2))
    b2 = list(data.batches(ds, 64, seed=3, epoch=2, start=2))
    assert len(b1) == 500 // 64
    np.testing.assert_array_equal(b1[2][1], b2[0][1])
    seen = np.concatenate([b[1] for b in data.batches(ds, 100, seed=0, epoch=0)])
    np.testing.assert_array_equal(np.sort(seen), np.sort(ds.labels))
    other = np.concatenate([b[1] for b in data.batches(ds, 100, seed=0, epoch=1)])
    assert not np.array_equal(seen, other)


def test_augmentation_deterministic_and_shape_preserving():
    x = jax.random.uniform(jax.random.key(0), (16, 8, 8, 3))
    a = data.augment(jax.random.key(1), x)
    b = data.augment(jax.random.key(1), x)
    c = data.augment(jax.random.key(2), x)
    chex.assert_equal_shape([a, x])
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(a, c)
    # Each output is a flipped or unflipped crop of the zero-padded input.
    padded = np.pad(np.asarray(x), ((0, 0), (4, 4), (4, 4), (0, 0)))
    for i in range(4):
        ok = False
        for dy in range(9):
            for dx in range(9):
                crop = padded[i, dy : dy + 8, dx : dx + 8]
                ok |= np.array_equal(crop, a[i]) or np.array_equal(crop[:, ::-1], a[i])
        assert ok
    flipped = data.random_flip(jax.random.key(0), x)
    for i in range(16):
        assert np.array_equal(flipped[i], x[i]) or np.array_equal(flipped[i], x[i, :, ::-1])


def test_channel_stats_and_synthetic():
    mean, std = data.channel_stats(np.full((2, 4, 4, 1), 51, np.uint8))
    assert mean == pytest.approx((0.2,)) and std == pytest.approx((0.0,))
    a = data.load("cifar10", "train", source="synthetic")
    b = data.load("cifar10", "train", source="synthetic")
    chex.assert_trees_all_equal((a.images, a.labels), (b.images, b.labels))
    chex.assert_shape(a.images, (512, 32, 32, 3))


def test_dataset_constants_have_one_source():
    """The models, the configs and the data registry share one definition of each constant."""
    from lipjax import models
    from lipjax.training import config

    assert models.CIFAR10_STD is data.DATASETS["cifar10"].std == data.CIFAR10_STD
    assert data.CIFAR10_STD == (0.2470, 0.2435, 0.2616)
    assert models.CIFAR10_MEAN is data.DATASETS["cifar10"].mean
    assert models.CIFAR100_MEAN is data.DATASETS["cifar100"].mean
    assert models.CIFAR100_STD is data.DATASETS["cifar100"].std
    assert models.MNIST_MEAN is data.DATASETS["mnist"].mean and models.MNIST_STD is data.DATASETS["mnist"].std
    assert config.load_config("mnist")["model_kwargs"]["mean"] == data.MNIST_MEAN
    assert config.load_config("cifar10_cpl_s")["model_kwargs"]["mean"] == data.CIFAR10_MEAN
    assert config.load_config("cifar100_cpl_s")["model_kwargs"]["mean"] == data.CIFAR100_MEAN


def test_core_package_does_not_import_tensorflow():
    code = "import sys, lipjax.data, lipjax.models; assert 'tensorflow' not in sys.modules, 'tensorflow'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
