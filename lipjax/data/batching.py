"""Epoch shuffling and batching of an in-memory :class:`~lipjax.data.Dataset`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lipjax.data.dataset import Dataset

__all__ = ["batches", "epoch_permutation"]


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
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    n = len(ds)
    order = epoch_permutation(n, seed, epoch) if seed is not None else np.arange(n)
    stop = n - n % batch_size if drop_remainder else n
    for i in range(start * batch_size, stop, batch_size):
        idx = np.sort(order[i : i + batch_size]) if seed is not None else order[i : i + batch_size]
        yield ds.images[idx], ds.labels[idx]
