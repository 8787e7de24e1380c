"""Lipschitz upper and lower bounds of feed-forward ReLU networks.

A network ``f = W_l R W_{l-1} R ... R W_0`` (``R`` = ReLU, biases anywhere: they
do not change the upper bounds) has, almost everywhere, the Jacobian

    J(x) = W_l D_l(x) W_{l-1} ... D_1(x) W_0,   D_r(x) = diag(0 or 1).

For an induced matrix norm ``||.||_p`` (p in {1, 2, inf}) its Lipschitz constant
is ``L = sup_x ||J(x)||_p``. This module computes, in float64 numpy:

==========  ========================================================  =============
name        definition                                                cost
==========  ========================================================  =============
``K_star``  ``prod_r ||W_r||``                                         l matrix norms
``K``       ``max_D ||W_l D_l ... D_1 W_0||`` (pattern relaxation)      ``2^(a_1+...+a_l)``
``K1``      Combettes-Pesquet, sum over chains of cut points           O(l^2) products (DP)
``K3``      ``|| |W_l| ... |W_0| ||``                                  l products
``K4``      Després-Pintore, sum over chains of norms of ``|.|``       ``2^l`` (brute force)
``K5``      new: norm of the chain sum of ``|.|`` products             O(l^2) products (DP)
==========  ========================================================  =============

with the ordering, for p in {1, inf} (proved in the docstrings below and checked
in ``tests/test_bounds.py``)::

    L <= K <= K5 <= K4 <= min(K1, K3) <= max(K1, K3) <= K_star.

For p = 2 the slides define only ``K_star``, ``K`` and ``K1``. Here ``K3``, ``K4``
and ``K5`` are still returned for p = 2 and are still sound upper bounds of ``K``
(the spectral norm is monotone on entrywise non-negative matrices:
``||A||_2 <= || |A| ||_2 <= ||B||_2`` whenever ``|A| <= B`` entrywise), and
``K <= K5 <= K4 <= K3`` still holds, but ``K4 <= K1`` and ``K3 <= K_star`` do not
(``|| |A| ||_2`` may exceed ``||A||_2``).

A lower bound comes from :func:`lipschitz_lower_bound` (gradient ascent on
secant ratios, with exact Jacobian norms at the points it visits) and, for
scalar input and output, the exact constant from :func:`exact_lipschitz_1d`.

References:
  B. Després, M. Pintore, "Computable Lipschitz bounds for deep neural
  networks", arXiv:2410.21053 (2024) (``K3``, ``K4``; tables reproduced in
  ``experiments/``). P. L. Combettes, J.-C. Pesquet, "Lipschitz certificates
  for layered network structures driven by averaged activation operators",
  SIAM J. Math. Data Sci. 2 (2020) (``K1``). C. Szegedy et al., "Intriguing
  properties of neural networks" (2013) (``K_star``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Array = np.ndarray
Norm = float | int | str

__all__ = [
    "DEFAULT_MAX_PATTERNS",
    "DEFAULT_MAX_SUBSETS",
    "exact_lipschitz_1d",
    "hat_network",
    "jacobian_at",
    "k1",
    "k1_bruteforce",
    "k3",
    "k4",
    "k5",
    "k5_matrix",
    "k_exact",
    "k_star",
    "lipschitz_bounds",
    "lipschitz_lower_bound",
    "matrix_norm",
    "parse_norm",
    "partial_products",
    "pattern_products",
    "validate_weights",
    "weights_from_dense_params",
    "weights_from_flax",
]

DEFAULT_MAX_PATTERNS = 2**16
"""Largest number of activation patterns :func:`k_exact` enumerates by default."""

DEFAULT_MAX_SUBSETS = 2**16
"""Largest number of cut subsets (``2^l``) the brute-force sums visit by default."""


# ---------------------------------------------------------------------------
# Validation and elementary pieces.
# ---------------------------------------------------------------------------


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


def _check_subsets(num_layers: int, max_subsets: int, name: str) -> None:
    count = 2 ** (num_layers - 1)
    if count > max_subsets:
        raise ValueError(
            f"{name} sums over 2^{num_layers - 1} = {count} subsets of cut points, more than "
            f"max_subsets={max_subsets}; raise max_subsets or use the polynomial "
            f"{'K1 (k1)' if name.startswith('K1') else 'K5 (k5)'}"
        )


def _chains(num_layers: int):
    """Yields every chain ``0 = c_0 < c_1 < ... < c_n < c_{n+1} = l + 1``."""
    inner = range(1, num_layers)
    for n in range(num_layers):
        for cuts in itertools.combinations(inner, n):
            yield (0, *cuts, num_layers)


# ---------------------------------------------------------------------------
# Upper bounds.
# ---------------------------------------------------------------------------


def k_star(weights: Sequence[Any], norm: Norm) -> float:
    """Product of the layer norms, ``K_* = prod_{r=0}^{l} ||W_r||_p``.

    ``L <= K <= K_*`` since ``||D_r||_p <= 1`` and induced norms are
    sub-multiplicative.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf.

    Returns:
      ``K_*`` in float64.
    """
    ws = validate_weights(weights)
    return float(np.prod([matrix_norm(w, norm) for w in ws]))


def k_exact(weights: Sequence[Any], norm: Norm, *, max_patterns: int = DEFAULT_MAX_PATTERNS) -> float:
    """Exact maximum over activation patterns (Szegedy et al.).

        K = max_{D_1, ..., D_l diagonal in {0, 1}} ||W_l D_l W_{l-1} ... D_1 W_0||_p.

    ``L <= K`` (every Jacobian is one such product); ``K`` may exceed ``L``
    because not every pattern is reachable. Enumerates ``2^(a_1 + ... + a_l)``
    patterns layer by layer (products are batched, so memory is about
    ``2^(a_1+...+a_l) * max_r a_r * a_0`` floats).

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf.
      max_patterns: refuse (``ValueError``) when the number of patterns is larger.

    Returns:
      ``K`` in float64.
    """
    return float(np.max(matrix_norm(pattern_products(weights, max_patterns=max_patterns), norm)))


def pattern_products(weights: Sequence[Any], *, max_patterns: int = DEFAULT_MAX_PATTERNS) -> Array:
    """Every product ``W_l D_l ... D_1 W_0`` over the ``2^(a_1+...+a_l)`` patterns.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      max_patterns: refuse (``ValueError``) when the number of patterns is larger.

    Returns:
      An array of shape ``(2^(a_1+...+a_l), a_{l+1}, a_0)``.
    """
    ws = validate_weights(weights)
    hidden = sum(w.shape[0] for w in ws[:-1])
    if 2**hidden > max_patterns:
        raise ValueError(
            f"exact K needs 2^{hidden} = {2**hidden} activation patterns "
            f"({hidden} hidden units), more than max_patterns={max_patterns}; "
            "raise max_patterns (cost and memory grow as 2^hidden) or use K5/K4/K1"
        )
    batch = ws[0][None]  # (patterns, a_1, a_0)
    for w in ws[1:]:
        width = batch.shape[1]
        masks = _all_masks(width)  # (2^width, width)
        # For each previous product P and mask d: W diag(d) P.
        masked = masks[:, None, :, None] * batch[None]  # (2^width, B, width, a_0)
        batch = np.einsum("ij,mbjk->mbik", w, masked).reshape(-1, w.shape[0], batch.shape[2])
    return batch


def _all_masks(width: int) -> Array:
    codes = np.arange(2**width, dtype=np.int64)[:, None]
    return ((codes >> np.arange(width)) & 1).astype(np.float64)


def k1(weights: Sequence[Any], norm: Norm) -> float:
    """Combettes-Pesquet bound by dynamic programming over cut positions.

        K1 = 2^-l sum_{1 <= r_1 < ... < r_n <= l}
             ||W_(l+1, r_n)|| ||W_(r_n, r_{n-1})|| ... ||W_(r_1, 0)||,

    with ``W_(t,s) = W_{t-1} ... W_s``. The sum runs over chains of cuts
    ``0 = c_0 < ... < c_{n+1} = l+1``, so with ``a[0] = 1`` and
    ``a[t] = sum_{s < t} a[s] ||W_(t,s)||`` one has ``K1 = 2^-l a[l+1]``:
    ``O(l^2)`` norms of partial products instead of ``2^l`` terms. (The factor
    ``2^-l`` is spread over the recursion, ``2^-1`` per layer crossed, to keep
    the numbers in range for deep networks.)

    ``K <= K1`` (write ``D_r = (I + Z_r)/2``, ``Z_r = diag(+-1)``, expand and use
    the triangle inequality and ``||Z_r|| = 1``) and ``K1 <= K_*`` (every term is
    at most ``K_*`` by sub-multiplicativity, and there are ``2^l`` of them).

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf.

    Returns:
      ``K1`` in float64, equal (up to rounding) to :func:`k1_bruteforce`.

    References:
      Combettes and Pesquet (2020), Després and Pintore (2024).
    """
    ws = validate_weights(weights)
    n = len(ws)  # l + 1 matrices, cuts 0..n
    prods = partial_products(ws)
    a = np.zeros(n + 1)
    a[0] = 1.0
    for t in range(1, n + 1):
        top = min(t, n - 1)
        a[t] = sum(a[s] * matrix_norm(prods[(t, s)], norm) * 0.5 ** (top - s) for s in range(t))
    return float(a[n])


def k1_bruteforce(weights: Sequence[Any], norm: Norm, *, max_subsets: int = DEFAULT_MAX_SUBSETS) -> float:
    """``K1`` by the explicit sum over the ``2^l`` subsets of cut points (see :func:`k1`).

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf.
      max_subsets: refuse (``ValueError``) when ``2^l`` is larger.

    Returns:
      ``K1`` in float64.
    """
    ws = validate_weights(weights)
    _check_subsets(len(ws), max_subsets, "K1 brute force")
    prods = partial_products(ws)
    norms = {key: matrix_norm(m, norm) for key, m in prods.items()}
    total = 0.0
    for chain in _chains(len(ws)):
        total += math.prod(norms[(chain[k + 1], chain[k])] for k in range(len(chain) - 1))
    return total / 2 ** (len(ws) - 1)


def k3(weights: Sequence[Any], norm: Norm) -> float:
    """Després-Pintore ``K3 = || |W_l| |W_{l-1}| ... |W_0| ||_p`` (entrywise ``|.|``).

    Proof of ``K <= K3``: ``|W_l D_l ... D_1 W_0| <= |W_l| ... |W_0|``
    entrywise (``0 <= D_r <= I``), and for p in {1, inf} (also 2)
    ``||A|| = || |A| ||`` (resp. ``<=``) is monotone on non-negative matrices.
    For p in {1, inf}, ``K3 <= K_*`` because ``|| |A| || = ||A||``.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1 or inf as in the slides; 2 is accepted and is then a sound
        upper bound of ``K`` that may exceed ``K_*``.

    Returns:
      ``K3`` in float64.
    """
    ws = validate_weights(weights)
    acc = np.abs(ws[0])
    for w in ws[1:]:
        acc = np.abs(w) @ acc
    return matrix_norm(acc, norm)


def k4(weights: Sequence[Any], norm: Norm, *, max_subsets: int = DEFAULT_MAX_SUBSETS) -> float:
    """Després-Pintore ``K4`` (brute force over the ``2^l`` subsets).

        K4 = 2^-l sum_{1 <= r_1 < ... < r_n <= l}
             || |W_(l+1, r_n)| |W_(r_n, r_{n-1})| ... |W_(r_1, 0)| ||_p,

    where ``|W_(t,s)| = |W_{t-1} ... W_s|`` is the entrywise absolute value of
    the *product* (not the product of absolute values).

    Proof of ``K <= K4``: with ``D_r = (I + Z_r)/2``,
    ``W_l D_l ... D_1 W_0 = 2^-l sum_chains W_(l+1,r_n) Z_{r_n} ... Z_{r_1} W_(r_1,0)``;
    each term is entrywise bounded in absolute value by
    ``|W_(l+1,r_n)| ... |W_(r_1,0)|`` (``|Z_r| = I``); ``||.||_{1,inf}`` is monotone on
    non-negative matrices and ``|| |A| || = ||A||``; then use the triangle
    inequality. ``K4 <= K1``: sub-multiplicativity on each term.
    ``K4 <= K3``: ``|W_(t,s)| <= |W_{t-1}| ... |W_s|`` entrywise, so every term is
    at most ``K3``.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1 or inf (2 accepted: a sound bound of ``K``, not ``<= K1``).
      max_subsets: refuse (``ValueError``) when ``2^l`` is larger.

    Returns:
      ``K4`` in float64.
    """
    ws = validate_weights(weights)
    _check_subsets(len(ws), max_subsets, "K4")
    abs_prods = {key: np.abs(m) for key, m in partial_products(ws).items()}
    total = 0.0
    for chain in _chains(len(ws)):
        acc = abs_prods[(chain[1], chain[0])]
        for k in range(1, len(chain) - 1):
            acc = abs_prods[(chain[k + 1], chain[k])] @ acc
        total += matrix_norm(acc, norm)
    return total / 2 ** (len(ws) - 1)


def k5_matrix(weights: Sequence[Any]) -> Array:
    """The non-negative matrix ``M = 2^-l sum_chains |W_(l+1,r_n)| ... |W_(r_1,0)|``.

    Computed by the recursion ``M[0] = I``,
    ``M[t] = sum_{s<t} |W_(t,s)| M[s]`` (with ``2^-1`` per layer crossed), so
    ``M = M[l+1]`` costs ``O(l^2)`` matrix products.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.

    Returns:
      ``M``, shape ``(a_{l+1}, a_0)``, entrywise non-negative, and
      ``|W_l D_l ... D_1 W_0| <= M`` entrywise for every pattern ``D``.
    """
    ws = validate_weights(weights)
    n = len(ws)
    prods = partial_products(ws)
    mats: list[Array] = [np.eye(ws[0].shape[1])]
    for t in range(1, n + 1):
        top = min(t, n - 1)
        acc = sum(0.5 ** (top - s) * (np.abs(prods[(t, s)]) @ mats[s]) for s in range(t))
        mats.append(acc)
    return mats[n]


def k5(weights: Sequence[Any], norm: Norm) -> float:
    """New bound: the norm of the chain sum, ``K5 = ||M||_p`` with ``M`` from :func:`k5_matrix`.

        K5 = || 2^-l sum_{1 <= r_1 < ... < r_n <= l}
                |W_(l+1, r_n)| |W_(r_n, r_{n-1})| ... |W_(r_1, 0)| ||_p.

    ``K4`` takes the sum of the norms of the chain terms; ``K5`` takes the norm
    of their sum. Polynomial: ``O(l^2)`` products of partial products, by the
    same dynamic programming over cut positions as :func:`k1`.

    Proof that ``K <= K5 <= K4`` (p in {1, inf}; also p = 2):

    1. Fix a pattern and write ``D_r = (I + Z_r)/2`` with ``Z_r = 2 D_r - I =
       diag(+-1)``. Expanding the product over the ``2^l`` choices of ``I`` or
       ``Z_r`` at each cut gives
       ``A := W_l D_l ... D_1 W_0 = 2^-l sum_chains W_(l+1,r_n) Z_{r_n} ... Z_{r_1} W_(r_1,0)``
       (the factors between two chosen ``Z``'s multiply to a partial product).
    2. Entrywise, ``|X Z Y| <= |X| |Z| |Y| = |X| |Y|`` for any ``X, Y`` and
       ``Z = diag(+-1)``, and ``|sum_k X_k| <= sum_k |X_k|``; hence
       ``|A| <= M`` entrywise, for every pattern.
    3. ``||.||_1`` and ``||.||_inf`` are column/row sums of absolute values, so
       ``||A|| = || |A| || <= ||M||`` (for p = 2: ``||A||_2 = max u^T A v <=
       max |u|^T |A| |v| <= ||M||_2``). Maximising over patterns gives
       ``K <= K5``.
    4. ``K5 = ||2^-l sum_chains T_chain|| <= 2^-l sum_chains ||T_chain|| = K4``
       (triangle inequality), with ``T_chain`` the non-negative chain products.

    With ``K4 <= min(K1, K3)`` this gives ``L <= K <= K5 <= K4 <= min(K1, K3)``.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, inf, or 2 (then ``K <= K5 <= K4 <= K3`` still holds).

    Returns:
      ``K5`` in float64.
    """
    return matrix_norm(k5_matrix(weights), norm)


def lipschitz_bounds(
    weights: Sequence[Any],
    norm: Norm,
    *,
    max_patterns: int = DEFAULT_MAX_PATTERNS,
    max_subsets: int = DEFAULT_MAX_SUBSETS,
    timings: dict[str, float] | None = None,
) -> dict[str, float]:
    """Every upper bound that fits within the size limits.

    Args:
      weights: ``[W_0, ..., W_l]``, each of shape out x in.
      norm: 1, 2 or inf (``"1"``, ``"2"``, ``"inf"`` accepted).
      max_patterns: ``K`` (exact, ``2^hidden`` patterns) is included only when
        the number of patterns is at most this.
      max_subsets: ``K4`` (``2^l`` subsets) is included only when ``2^l`` is at
        most this.
      timings: if given, filled with the seconds each bound took.

    Returns:
      A dict with keys ``"K_star"``, ``"K"`` (when computed), ``"K1"``,
      ``"K3"``, ``"K4"`` (when computed) and ``"K5"``, float64 values.
      For p in {1, inf}: ``K <= K5 <= K4 <= min(K1, K3) <= K_star``.
    """
    import time

    p = parse_norm(norm)
    ws = validate_weights(weights)
    hidden = sum(w.shape[0] for w in ws[:-1])
    jobs: list[tuple[str, Callable[[], float]]] = [("K_star", lambda: k_star(ws, p))]
    if 2**hidden <= max_patterns:
        jobs.append(("K", lambda: k_exact(ws, p, max_patterns=max_patterns)))
    jobs.append(("K1", lambda: k1(ws, p)))
    jobs.append(("K3", lambda: k3(ws, p)))
    if 2 ** (len(ws) - 1) <= max_subsets:
        jobs.append(("K4", lambda: k4(ws, p, max_subsets=max_subsets)))
    jobs.append(("K5", lambda: k5(ws, p)))
    out: dict[str, float] = {}
    for name, job in jobs:
        start = time.perf_counter()
        out[name] = float(job())
        if timings is not None:
            timings[name] = time.perf_counter() - start
    return out


# ---------------------------------------------------------------------------
# Lower bounds.
# ---------------------------------------------------------------------------


def _validate_biases(ws: list[Array], biases: Sequence[Any] | None) -> list[Array]:
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


def jacobian_at(weights: Sequence[Any], biases: Sequence[Any] | None, x: Any) -> Array:
    """Jacobian ``W_l D_l(x) ... D_1(x) W_0`` of the ReLU network at ``x`` (float64).

    ``D_r(x) = diag(z_r(x) > 0)`` with ``z_r`` the pre-activations. At a point
    where no pre-activation is exactly zero this is the true Jacobian, so its
    norm is a lower bound of ``L``.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      biases: ``[b_0, ..., b_l]`` or None (zeros).
      x: input of size ``a_0``.

    Returns:
      The ``(a_{l+1}, a_0)`` Jacobian.
    """
    ws = validate_weights(weights)
    bs = _validate_biases(ws, biases)
    h = np.asarray(x, dtype=np.float64).reshape(-1)
    jac = np.eye(h.size)
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        z = w @ h + b
        jac = (z > 0)[:, None] * (w @ jac)
        h = np.maximum(z, 0.0)
    return ws[-1] @ jac


def exact_lipschitz_1d(weights: Sequence[Any], biases: Sequence[Any] | None = None) -> float:
    """Exact Lipschitz constant of a ReLU network ``R -> R``: its largest ``|slope|``.

    The network is piecewise affine on the line. Layer by layer, on each
    interval where the previous layers are affine, the zeros of the next
    pre-activations are added as breakpoints; at the end ``f`` is affine on each
    interval and ``L = max |f'|`` over the intervals (slope from the pattern at
    an interior point). The number of pieces can grow like ``2^l``.

    Args:
      weights: ``[W_0, ..., W_l]`` with ``W_0`` of shape ``(a_1, 1)`` and
        ``W_l`` of shape ``(1, a_l)``.
      biases: ``[b_0, ..., b_l]`` or None (zeros).

    Returns:
      ``L`` in float64 (up to rounding of the breakpoints).
    """
    ws = validate_weights(weights)
    if ws[0].shape[1] != 1 or ws[-1].shape[0] != 1:
        raise ValueError(
            f"exact_lipschitz_1d needs scalar input and output, got {ws[0].shape[1]} inputs "
            f"and {ws[-1].shape[0]} outputs"
        )
    bs = _validate_biases(ws, biases)
    breaks: list[float] = []

    def interior_points(pts: list[float]) -> list[float]:
        if not pts:
            return [0.0]
        mids = [pts[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(pts)]
        return mids + [pts[-1] + 1.0]

    for depth in range(len(ws) - 1):
        new = []
        edges = [-math.inf, *breaks, math.inf]
        for k, m in enumerate(interior_points(breaks)):
            lo, hi = edges[k], edges[k + 1]
            # Pre-activation of layer `depth` is affine on (lo, hi): value + slope * (x - m).
            h = np.array([m])
            jac = np.eye(1)
            for w, b in zip(ws[:depth], bs[:depth], strict=True):
                z = w @ h + b
                jac = (z > 0)[:, None] * (w @ jac)
                h = np.maximum(z, 0.0)
            value = ws[depth] @ h + bs[depth]
            slope = (ws[depth] @ jac)[:, 0]
            nz = slope != 0
            roots = m - value[nz] / slope[nz]
            new.extend(float(r) for r in roots if lo < r < hi)
        breaks = sorted(set(breaks) | set(new))
    slopes = [abs(jacobian_at(ws, bs, [m])[0, 0]) for m in interior_points(breaks)]
    return float(max(slopes))


def lipschitz_lower_bound(
    weights: Sequence[Any],
    norm: Norm,
    biases: Sequence[Any] | None = None,
    *,
    num_starts: int = 64,
    num_steps: int = 100,
    scale: float = 1.0,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> float:
    """Largest Jacobian norm found by gradient ascent from many starting points.

        L >= max_k max( ||f(x_k + d_k) - f(x_k)||_p / ||d_k||_p,
                        ||J(x_k)||_p, ||J(x_k + d_k)||_p ).

    The Jacobian of a ReLU network is piecewise constant, so its norm has no
    useful gradient; instead Adam ascends the secant ratio
    ``||f(x + d) - f(x)||_p / ||d||_p`` (every value of it is ``<= L``) jointly in
    ``x`` and ``d`` from ``num_starts`` random starts (``x ~ N(0, scale^2)``),
    in float32 with JAX, and every visited end point is then re-evaluated
    exactly in float64 (secant ratio and Jacobian norm). For scalar input and
    output use :func:`exact_lipschitz_1d`, which this function returns then.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf (the same p on input and output).
      biases: ``[b_0, ..., b_l]`` or None (zeros: then ``f`` is positively
        homogeneous and only patterns of cones through 0 occur).
      num_starts: number of random starting pairs.
      num_steps: Adam steps.
      scale: standard deviation of the starting points.
      learning_rate: Adam step size, relative to ``scale``.
      seed: PRNG seed.

    Returns:
      A lower bound of ``L`` (not a certificate of anything).
    """
    import jax
    import jax.numpy as jnp
    import optax

    p = parse_norm(norm)
    ws = validate_weights(weights)
    bs = _validate_biases(ws, biases)
    if ws[0].shape[1] == 1 and ws[-1].shape[0] == 1:
        return exact_lipschitz_1d(ws, bs)
    wj = [jnp.asarray(w, jnp.float32) for w in ws]
    bj = [jnp.asarray(b, jnp.float32) for b in bs]

    def net(x):
        for w, b in zip(wj[:-1], bj[:-1], strict=True):
            x = jax.nn.relu(w @ x + b)
        return wj[-1] @ x + bj[-1]

    def vnorm(v):
        if p == 1.0:
            return jnp.sum(jnp.abs(v))
        if p == 2.0:
            return jnp.sqrt(jnp.sum(v * v) + 1e-30)
        return jnp.max(jnp.abs(v))

    def neg_log_ratio(params):
        x, d = params
        return -(jnp.log(vnorm(net(x + d) - net(x)) + 1e-30) - jnp.log(vnorm(d) + 1e-30))

    def loss(params):
        return jnp.sum(jax.vmap(lambda x, d: neg_log_ratio((x, d)))(*params))

    n_in = ws[0].shape[1]
    kx, kd = jax.random.split(jax.random.PRNGKey(seed))
    x0 = scale * jax.random.normal(kx, (num_starts, n_in))
    d0 = 0.1 * scale * jax.random.normal(kd, (num_starts, n_in))
    opt = optax.adam(learning_rate * scale)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=num_steps)
        return params

    xs, ds = (np.asarray(a, np.float64) for a in run((x0, d0)))
    x0, d0 = np.asarray(x0, np.float64), np.asarray(d0, np.float64)
    best = 0.0
    for x, d in itertools.chain(zip(x0, d0, strict=True), zip(xs, ds, strict=True)):
        for point in (x, x + d):
            best = max(best, matrix_norm(jacobian_at(ws, bs, point), p))
        dn = np.linalg.norm(d, ord=p)
        if dn > 0:
            fx = jacobian_free_forward(ws, bs, x)
            fy = jacobian_free_forward(ws, bs, x + d)
            best = max(best, float(np.linalg.norm(fy - fx, ord=p) / dn))
    return best


def jacobian_free_forward(ws: Sequence[Array], bs: Sequence[Array], x: Any) -> Array:
    """Forward pass ``W_l R(... R(W_0 x + b_0) ...) + b_l`` in float64."""
    h = np.asarray(x, dtype=np.float64).reshape(-1)
    for w, b in zip(ws[:-1], bs[:-1], strict=True):
        h = np.maximum(w @ h + b, 0.0)
    return ws[-1] @ h + bs[-1]


# ---------------------------------------------------------------------------
# A network with a known constant.
# ---------------------------------------------------------------------------


def hat_network(depth: int, representation: str = "slides") -> tuple[list[Array], list[Array]]:
    """ReLU network of ``f(x) = x - sum_{r=1}^{l} g_r(x) / 4^r`` (``l = depth``).

    ``g(x) = 2x`` on ``[0, 1/2]``, ``2(1 - x)`` on ``[1/2, 1]`` and
    ``g_r = g o ... o g`` (r times); ``f`` interpolates ``x^2`` on ``[0, 1]`` at the
    points ``k / 2^l`` (Yarotsky 2017). Its exact constant is
    ``L = max |f'| = 1 + sum_{r=1}^{l} 2^-r = 2 - 2^-l``. The bounds depend on how
    ``g`` is written with ReLUs (``R``); each hidden layer has three neurons.

    * ``"slides"`` (Després-Pintore's table): ``g(y) = 1 - R(2y - 1) - R(1 - 2y)``.
      Hidden layer r holds ``(R(2y - 1), R(1 - 2y), R(s))`` with ``y = g_{r-1}(x)``
      (``g_0(x) = x``) and the partial sum ``s = x - sum_{k<r} g_k(x) / 4^k``; the
      output is ``s - g_l(x) / 4^l``. In the l-inf norm it reproduces every entry
      of the slides' table: ``K* = 2^(2l-1) + 1`` (``||W_0|| = 2``, hidden layers 4,
      output ``1 + 2/4^l``), ``K3 = l + 1`` (each ``|g_r|`` path carries ``4^r / 4^r``),
      and ``K = K4 = L``.
    * ``"ramp"``: ``g(y) = 2 R(y) - 4 R(y - 1/2)`` (``+ 2 R(x - 1)`` on the first
      layer, which also carries ``x = R(x)``); hidden layers ``(R(y), R(y - 1/2),
      R(s))``. Here ``K = L`` but ``K4 > L`` for ``l >= 2``: "K4 = L" is a property
      of the representation, not of the function.

    Args:
      depth: number of hidden layers ``l >= 1``.
      representation: ``"slides"`` or ``"ramp"``.

    Returns:
      ``(weights, biases)`` with ``weights = [W_0, ..., W_l]``.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if representation == "slides":
        weights = [np.array([[2.0], [-2.0], [1.0]])]
        biases = [np.array([-1.0, 1.0, 0.0])]
        for r in range(1, depth):
            q = 4.0**-r  # s_r = s_{r-1} - (1 - a - b) / 4^r, with a, b the layer's ramps
            weights.append(np.array([[-2.0, -2.0, 0.0], [2.0, 2.0, 0.0], [q, q, 1.0]]))
            biases.append(np.array([1.0, -1.0, -q]))
        q = 4.0**-depth
        weights.append(np.array([[q, q, 1.0]]))
        biases.append(np.array([-q]))
        return weights, biases
    if representation != "ramp":
        raise ValueError(f"representation must be 'slides' or 'ramp'; got {representation!r}")
    weights = [np.array([[1.0], [1.0], [1.0]])]
    biases = [np.array([0.0, -0.5, -1.0])]
    y = np.array([2.0, -4.0, 2.0])  # g_1 as a form on layer-1 neurons
    s = np.array([1.0, 0.0, 0.0]) - y / 4
    for r in range(2, depth + 1):
        weights.append(np.stack([y, y, s]))
        biases.append(np.array([0.0, -0.5, 0.0]))
        y = np.array([2.0, -4.0, 0.0])
        s = np.array([0.0, 0.0, 1.0]) - y / 4**r
    weights.append(s[None, :])
    biases.append(np.zeros(1))
    return weights, biases


# ---------------------------------------------------------------------------
# Flax networks -> explicit matrices.
# ---------------------------------------------------------------------------


def weights_from_dense_params(params: Mapping[str, Any]) -> list[Array]:
    """Weight list of a Flax MLP from its ``params`` tree of ``nn.Dense`` layers.

    Layers are taken in the order of their names' numeric suffix
    (``Dense_0``, ``Dense_1``, ... or ``layers_0``, ...). Flax stores kernels
    as ``in x out``; they are transposed to ``out x in``.

    Args:
      params: ``variables["params"]`` (or ``variables``) with one sub-dict per
        layer holding a 2-D ``kernel``.

    Returns:
      ``[W_0, ..., W_l]`` in float64.

    Raises:
      TypeError: a layer without a 2-D ``kernel`` (e.g. a conv: use
        :func:`weights_from_flax`).
    """
    if "params" in params and isinstance(params["params"], Mapping):
        params = params["params"]

    def order(name: str) -> tuple[int, str]:
        digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
        return (int(digits) if digits else -1, name)

    out = []
    for name in sorted(params, key=order):
        layer = params[name]
        kernel = layer.get("kernel") if isinstance(layer, Mapping) else None
        if kernel is None or np.ndim(kernel) != 2:
            raise TypeError(
                f"layer {name!r} is not a Dense layer with a 2-D kernel; "
                "use weights_from_flax(module, variables, input_shape) for conv networks"
            )
        out.append(np.asarray(kernel, dtype=np.float64).T)
    return validate_weights(out)


def weights_from_flax(
    module: Any, variables: Mapping[str, Any], input_shape: Sequence[int]
) -> tuple[list[Array], list[Array]]:
    """Explicit matrices of a Flax network made of ``nn.Dense``/``nn.Conv`` and ReLU.

    The module is run once on a zero input of shape ``(1, *input_shape)`` while
    :func:`flax.linen.intercept_methods` records every ``Dense``/``Conv`` call.
    The matrix of each recorded layer is built by applying the layer itself
    (its real padding, strides and dilation) to the ``n_in`` identity basis
    vectors as one batch and subtracting the bias, so a conv becomes its
    ``n_out x n_in`` matrix on flattened (row-major ``H, W, C``) inputs.
    Finally the plain chain ``W_l R(... R(W_0 x + b_0)) + b_l`` is checked
    against the module on random inputs; anything else between the layers
    (pooling, normalization, residual connections, other activations) makes this
    check fail with a ``TypeError``.

    Size limit: each conv matrix holds ``n_in * n_out`` float64 numbers
    (8 bytes each), e.g. ``28*28*1 -> 14*14*8`` is 1.2 M entries (10 MB), a
    ``32*32*64 -> 32*32*64`` conv is 4.3e9 entries (34 GB): explicit matrices
    stop being feasible around ``n_in * n_out ~ 1e8``, and the bounds then also
    multiply such matrices.

    Args:
      module: a ``flax.linen`` Module.
      variables: its variables (``{"params": ...}``).
      input_shape: shape of one input without the batch axis, e.g. ``(28, 28, 1)``.

    Returns:
      ``(weights, biases)``: ``[W_0, ..., W_l]`` (out x in, float64) and the
      matching bias vectors.

    Raises:
      TypeError: a layer other than Dense/Conv holds parameters, or the network
        is not a Dense/Conv/ReLU chain.
    """
    import flax.linen as nn
    import jax.numpy as jnp

    weights: list[Array] = []
    biases: list[Array] = []
    records: list[tuple[Any, Any, tuple[int, ...]]] = []

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        mod = context.module
        if isinstance(mod, nn.Dense | nn.Conv):
            # A detached copy of the layer (same config, same parameters), applied later.
            layer = mod.clone(parent=None, name=None)
            records.append((layer, {"params": mod.variables["params"]}, np.shape(args[0])[1:]))
        elif mod.scope is not None and mod.scope.path and mod.variables.get("params"):
            # A leaf module with its own parameters that is neither Dense nor Conv.
            if not any(isinstance(v, Mapping) for v in mod.variables["params"].values()):
                raise TypeError(
                    f"unsupported layer {type(mod).__name__} at {'/'.join(mod.scope.path)}: "
                    "only nn.Dense and nn.Conv (with ReLU between them) are supported"
                )
        return next_fun(*args, **kwargs)

    x0 = jnp.zeros((1, *input_shape), jnp.float32)
    with nn.intercept_methods(interceptor):
        module.apply(variables, x0)
    if not records:
        raise TypeError("no nn.Dense or nn.Conv layer found in the module")
    for layer, layer_vars, feat_shape in records:
        n_in = int(np.prod(feat_shape))
        basis = jnp.eye(n_in, dtype=jnp.float32).reshape((n_in, *feat_shape))
        bias_out = layer.apply(layer_vars, jnp.zeros((1, *feat_shape), jnp.float32))
        cols = layer.apply(layer_vars, basis) - bias_out
        weights.append(np.asarray(cols, np.float64).reshape(n_in, -1).T)
        biases.append(np.asarray(bias_out, np.float64).reshape(-1))
    try:
        ws = validate_weights(weights)
    except ValueError as err:
        raise TypeError(
            "the module is not a plain chain of nn.Dense/nn.Conv layers with ReLU between "
            f"them (something reshapes or pools between two layers): {err}"
        ) from err

    # The recorded chain must be the network.
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(4, *input_shape)).astype(np.float32)
    expected = np.asarray(module.apply(variables, jnp.asarray(xs)), np.float64).reshape(4, -1)
    got = np.stack([jacobian_free_forward(ws, biases, x.reshape(-1)) for x in xs])
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise TypeError(
            "the module is not a plain chain of nn.Dense/nn.Conv layers with ReLU between "
            "them (pooling, normalization, skip connections and other activations are not "
            "supported): rebuilding it from its layers gives different outputs"
        )
    return ws, biases
