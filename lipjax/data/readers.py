"""Readers for local dataset files: MNIST-format IDX, image folders (or a
``.tar.gz`` of one) laid out as ``<split>/<class>/<file>``, and ``.npz`` arrays.

Every reader returns ``(images, labels)`` with ``images`` a ``uint8`` array of
shape ``(N, H, W, C)`` (NHWC) and ``labels`` an ``int32`` array of shape ``(N,)``.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff")

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# File stems of the MNIST distribution (also used by Fashion-MNIST / EMNIST).
_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataError(ValueError):
    """A dataset could not be read: missing file, bad format, bad shapes."""


def _require(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"dataset path does not exist: {str(path)!r}")
    return path


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), gzip-compressed or not.

    Args:
      path: an ``.idx``/``-ubyte`` file, optionally ending in ``.gz``.

    Returns:
      The array with the shape and dtype given in the file header.
    """
    path = _require(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{str(path)!r} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{str(path)!r}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{str(path)!r}: header announces shape {shape} ({expected} bytes) "
            f"but the file holds {len(data) - header} bytes of data"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(
        f"no IDX file {stem!r} (or {stem}.gz) in {str(directory)!r}; expected the MNIST "
        "file names train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]"
    )


def read_idx_split(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads the ``train`` or ``test`` split of an MNIST-format IDX directory."""
    directory = _require(directory)
    if split not in _IDX_STEMS:
        raise DataError(f"unknown split {split!r} for IDX data; use 'train' or 'test'")
    img_stem, lbl_stem = _IDX_STEMS[split]
    images = read_idx(_find_idx(directory, img_stem))
    labels = read_idx(_find_idx(directory, lbl_stem))
    if images.ndim == 3:
        images = images[..., None]
    return check_arrays(images, labels, source=str(directory))


def check_arrays(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    source: str = "arrays",
    image_shape: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validates an (images, labels) pair and returns it as (NHWC, int32)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DataError(f"{source}: images must have shape (N, H, W) or (N, H, W, C), got {images.shape}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must have shape (N,), got {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{source}: {images.shape[0]} images but {labels.shape[0]} labels; "
            "each image needs exactly one label"
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise DataError(
            f"{source}: images have shape {tuple(images.shape[1:])}, expected {tuple(image_shape)}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    return images, labels.astype(np.int32)


def _decode_image(data: bytes, name: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow is a dependency
        raise ImportError("reading image files needs pillow: pip install pillow") from err
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def _interleave_classes(entries: Iterable[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    """Files sorted by name within each class, then taken one class at a time in turn
    (``a/0, b/0, a/1, b/1, ...``): a folder sorted by class would make the first ``n``
    examples (``train_limit``, ``test_limit``) a few classes only."""
    by_class: dict[str, list[tuple[str, str, bytes]]] = {}
    for entry in sorted(entries, key=lambda e: (e[0], e[1])):
        by_class.setdefault(entry[0], []).append(entry)
    ranked = [(rank, cls, e) for cls, group in by_class.items() for rank, e in enumerate(group)]
    return [e for _, _, e in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _stack(
    entries: Iterable[tuple[str, str, bytes]], source: str, classes: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    entries = _interleave_classes(entries)
    if not entries:
        raise DataError(f"{source}: no image files found")
    found = sorted({c for c, _, _ in entries})
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{source}: class folders {unknown} are not in {classes}")
    index = {c: i for i, c in enumerate(classes)}
    images, labels, shape = [], [], None
    for cls, name, data in entries:
        arr = _decode_image(data, name)
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise DataError(
                f"{source}: image {cls}/{name} has shape {arr.shape}, expected {shape} "
                "(all images of a dataset must have the same size)"
            )
        images.append(arr)
        labels.append(index[cls])
    return np.stack(images), np.asarray(labels, np.int32), classes


def read_image_folder(
    root: str | os.PathLike, split: str, classes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reads ``root/<split>/<class>/<file>`` images (or from a ``.tar.gz`` of it).

    For a tarball the ``<split>/<class>/<file>`` layout may sit below one or more
    leading folders (``cifar10/train/airplane/0001.jpg``). Classes are sorted
    alphabetically unless ``classes`` gives the order.

    Returns:
      ``(images uint8 NHWC, labels int32, class names)``.
    """
    root = _require(root)
    if root.is_file():
        if not tarfile.is_tarfile(root):
            raise DataError(f"{str(root)!r} is neither a folder nor a tar archive")
        return read_image_tar(root, split, classes)
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"no split folder {str(split_dir)!r} (layout: <split>/<class>/<file>)")
    entries = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                entries.append((class_dir.name, f.name, f.read_bytes()))
    return _stack(entries, str(split_dir), classes)


def read_image_tar(
    path: str | os.PathLike, split: str, classes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Reads the ``<split>/<class>/<file>`` images inside a tar archive (gz or not)."""
    path = _require(path)
    entries = []
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = member.name.split("/")
            if len(parts) < 3 or parts[-3] != split:
                continue
            if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
                continue
            f = tar.extractfile(member)
            if f is not None:
                entries.append((parts[-2], parts[-1], f.read()))
    if not entries:
        raise DataError(f"{str(path)!r}: no images under a '{split}/<class>/' folder")
    return _stack(entries, f"{path}:{split}", classes)


def read_npz(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Reads a split from an ``.npz`` file.

    Accepted keys: ``x_<split>``/``y_<split>`` (Keras style),
    ``<split>_images``/``<split>_labels``, or ``images``/``labels`` (single split).
    An optional ``class_names`` array names the classes.
    """
    path = _require(path)
    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        for ik, lk in (
            (f"x_{split}", f"y_{split}"),
            (f"{split}_images", f"{split}_labels"),
            ("images", "labels"),
        ):
            if ik in keys and lk in keys:
                images, labels = f[ik], f[lk]
                break
        else:
            raise DataError(
                f"{str(path)!r} has keys {sorted(keys)}; expected x_{split}/y_{split}, "
                f"{split}_images/{split}_labels, or images/labels"
            )
        names = [str(c) for c in f["class_names"]] if "class_names" in keys else None
    images, labels = check_arrays(images, labels, source=str(path))
    return images, labels, names
