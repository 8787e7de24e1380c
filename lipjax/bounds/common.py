"""Pieces every bound shares: norms, validated weights, partial products, chains, the forward pass."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

Array = np.ndarray
Norm = float | int | str
T = TypeVar("T")


def parse_norm(norm: Norm) -> float:
    """Returns the induced-norm exponent ``p`` as 1.0, 2.0 or ``inf``.

    Args:
      norm: 1, 2, ``numpy.inf``, or one of the strings ``"1"``, ``"2"``,
        ``"inf"``, ``"l1"``, ``"l2"``, ``"linf"``.

    Returns:
      ``1.0``, ``2.0`` or ``math.inf``.

    Raises:
      ValueError: for any other norm.
    """
    if isinstance(norm, str):
        key = norm.strip().lower().removeprefix("l")
        table = {"1": 1.0, "2": 2.0, "inf": math.inf, "infty": math.inf, "infinity": math.inf}
        if key in table:
            return table[key]
    elif isinstance(norm, int | float) and not isinstance(norm, bool):
        if float(norm) in (1.0, 2.0, math.inf):
            return float(norm)
    raise ValueError(f"unsupported norm {norm!r}: use 1, 2 or 'inf'")


def validate_weights(weights: Sequence[Any]) -> list[Array]:
    """Checks a list ``[W_0, ..., W_l]`` and returns it as float64 arrays.

    ``W_r`` has shape ``(a_{r+1}, a_r)`` (out x in), so consecutive matrices
    must chain: ``W_r.shape[1] == W_{r-1}.shape[0]``.

    Args:
      weights: a non-empty sequence of 2-D array-likes.

    Returns:
      The same matrices as C-contiguous float64 numpy arrays.

    Raises:
      TypeError: ``weights`` is not a sequence of arrays.
      ValueError: empty list, a matrix that is not 2-D or is empty, non-finite
        entries, or shapes that do not chain.
    """
    if isinstance(weights, np.ndarray | str | bytes) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a list [W0, ..., Wl] of 2-D arrays, got {type(weights).__name__}")
    if len(weights) == 0:
        raise ValueError("weights is empty: expected at least one matrix W0")
    out = []
    for r, w in enumerate(weights):
        try:
            a = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"W{r} is not a numeric array: {err}") from err
        if a.ndim != 2:
            raise ValueError(f"W{r} must be a 2-D (out x in) matrix, got shape {a.shape}")
        if a.size == 0:
            raise ValueError(f"W{r} is empty (shape {a.shape})")
        if not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise ValueError(f"W{r} has {bad} non-finite entries (nan or inf)")
        if r > 0 and a.shape[1] != out[-1].shape[0]:
            raise ValueError(
                f"W{r} has {a.shape[1]} columns but W{r - 1} has {out[-1].shape[0]} rows "
                f"(W{r} must be out x in, with in = out of W{r - 1})"
            )
        out.append(np.ascontiguousarray(a))
    return out


def validate_biases(ws: list[Array], biases: Sequence[Any] | None) -> list[Array]:
    """Biases ``[b_0, ..., b_l]`` matching ``ws`` as float64 vectors (zeros when None)."""
    if biases is None:
        return [np.zeros(w.shape[0]) for w in ws]
    if len(biases) != len(ws):
        raise ValueError(f"got {len(biases)} biases for {len(ws)} weight matrices")
    out = []
    for r, (w, b) in enumerate(zip(ws, biases, strict=True)):
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"b{r} has {b.size} entries but W{r} has {w.shape[0]} rows")
        if not np.all(np.isfinite(b)):
            raise ValueError(f"b{r} has non-finite entries")
        out.append(b)
    return out


def matrix_norm(a: Array, p: Norm) -> float:
    """Induced matrix norm ``||A||_p = max_{x != 0} ||A x||_p / ||x||_p``.

    ``||A||_1 = max_j sum_i |A_ij|`` (largest column sum),
    ``||A||_inf = max_i sum_j |A_ij|`` (largest row sum),
    ``||A||_2 = sigma_max(A)`` (largest singular value, by SVD).

    Args:
      a: a 2-D array, or a stack ``(..., m, n)`` of them.
      p: 1, 2 or inf.

    Returns:
      The norm, a float (or an array of norms for a stack).
    """
    p = parse_norm(p)
    a = np.asarray(a, dtype=np.float64)
    if p == 1.0:
        out = np.abs(a).sum(axis=-2).max(axis=-1)
    elif p == math.inf:
        out = np.abs(a).sum(axis=-1).max(axis=-1)
    else:
        out = np.linalg.svd(a, compute_uv=False)[..., 0]
    return float(out) if np.ndim(out) == 0 else out


def partial_products(weights: Sequence[Array]) -> dict[tuple[int, int], Array]:
    """All partial products ``W_(t,s) = W_{t-1} W_{t-2} ... W_s``, ``0 <= s < t <= l+1``.

    Args:
      weights: validated ``[W_0, ..., W_l]``.

    Returns:
      A dict ``{(t, s): W_(t,s)}`` of ``(l+1)(l+2)/2`` matrices, each of shape
      ``(a_t, a_s)``; computed with ``(l+1) l / 2`` matrix products.
    """
    n = len(weights)
    prods: dict[tuple[int, int], Array] = {}
    for s in range(n):
        acc = weights[s]
        prods[(s + 1, s)] = acc
        for t in range(s + 2, n + 1):
            acc = weights[t - 1] @ acc
            prods[(t, s)] = acc
    return prods


def chain_sum(num_matrices: int, start: T, term: Callable[[int, int, T], T]) -> T:
    """Sum over chains of cut points by dynamic programming (shared by ``K1`` and ``K5``).

        a[0] = start,   a[t] = sum_{s < t} 2^-(min(t, n-1) - s) term(t, s, a[s]),   returns a[n]

    with ``n = l + 1`` matrices. Unrolled, ``a[n]`` is ``2^-l`` times the sum over
    every chain ``0 = c_0 < c_1 < ... < c_k < c_{k+1} = n`` of the nested terms
    ``term(c_{k+1}, c_k, ... term(c_1, 0, start))``: the ``2^l`` chains cost
    ``O(n^2)`` terms. The factor ``2^-l`` is spread over the recursion (``2^-1``
    per layer crossed; the exponents telescope to ``l`` along every chain) to keep
    the numbers in range for deep networks.

    Args:
      num_matrices: ``n = l + 1``.
      start: ``a[0]`` (a number for ``K1``, the identity matrix for ``K5``).
      term: ``term(t, s, a_s)``, linear in ``a_s``, for the segment from cut ``s`` to cut ``t``.

    Returns:
      ``a[n]``.
    """
    a = [start]
    for t in range(1, num_matrices + 1):
        top = min(t, num_matrices - 1)
        a.append(sum(0.5 ** (top - s) * term(t, s, a[s]) for s in range(t)))
    return a[num_matrices]


def chains(num_layers: int):
    """Yields every chain ``0 = c_0 < c_1 < ... < c_n < c_{n+1} = l + 1``."""
    inner = range(1, num_layers)
    for n in range(num_layers):
        for cuts in itertools.combinations(inner, n):
            yield (0, *cuts, num_layers)


def check_subsets(num_layers: int, max_subsets: int, name: str) -> None:
    count = 2 ** (num_layers - 1)
    if count > max_subsets:
        raise ValueError(
            f"{name} sums over 2^{num_layers - 1} = {count} subsets of cut points, more than "
            f"max_subsets={max_subsets}; raise max_subsets or use the polynomial "
            f"{'K1 (k1)' if name.startswith('K1') else 'K5 (k5)'}"
        )


def relu_forward(
    ws: Sequence[Array], bs: Sequence[Array], x: Any, *, jacobian: bool = False
) -> tuple[Array, Array | None]:
    """The ReLU network at ``x``, in float64, and optionally its Jacobian there.

        f(x) = W_l R(... R(W_0 x + b_0) ...) + b_l,   J(x) = W_l D_l(x) ... D_1(x) W_0,

    with ``D_r(x) = diag(z_r(x) > 0)`` and ``z_r`` the pre-activations. Where no
    pre-activation is exactly zero, ``J(x)`` is the true Jacobian.

    Args:
      ws: validated ``[W_0, ..., W_l]``.
      bs: validated ``[b_0, ..., b_l]``.
      x: one input of size ``a_0``.
      jacobian: also return ``J(x)`` (costs one ``a_r x a_0`` product per layer).

    Returns:
      ``(f(x), J(x) or None)``.
    """
    h = np.asarray(x, dtype=np.float64).reshape(-1)
    jac = np.eye(h.size) if jacobian else None
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        z = w @ h + b
        if jacobian:
            jac = (z > 0)[:, None] * (w @ jac)
        h = np.maximum(z, 0.0)
    return ws[-1] @ h + bs[-1], (ws[-1] @ jac if jacobian else None)
