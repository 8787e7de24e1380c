"""Upper bounds ``K_star``, ``K``, ``K1``, ``K3``, ``K4``, ``K5`` of ReLU networks (see ``lipjax.bounds``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lipjax.bounds.common import (
    Array,
    Norm,
    chain_sum,
    chains,
    check_subsets,
    matrix_norm,
    parse_norm,
    partial_products,
    validate_weights,
)

DEFAULT_MAX_PATTERNS = 2**16
"""Largest number of activation patterns :func:`k_exact` enumerates by default."""

DEFAULT_MAX_SUBSETS = 2**16
"""Largest number of cut subsets (``2^l``) the brute-force sums visit by default."""


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
    ``O(l^2)`` norms of partial products instead of ``2^l`` terms
    (:func:`~lipjax.bounds.common.chain_sum`, shared with :func:`k5_matrix`).

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
    norms = {key: matrix_norm(m, norm) for key, m in partial_products(ws).items()}
    return float(chain_sum(len(ws), 1.0, lambda t, s, a_s: a_s * norms[(t, s)]))


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
    check_subsets(len(ws), max_subsets, "K1 brute force")
    prods = partial_products(ws)
    norms = {key: matrix_norm(m, norm) for key, m in prods.items()}
    total = 0.0
    for chain in chains(len(ws)):
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
    check_subsets(len(ws), max_subsets, "K4")
    abs_prods = {key: np.abs(m) for key, m in partial_products(ws).items()}
    total = 0.0
    for chain in chains(len(ws)):
        acc = abs_prods[(chain[1], chain[0])]
        for k in range(1, len(chain) - 1):
            acc = abs_prods[(chain[k + 1], chain[k])] @ acc
        total += matrix_norm(acc, norm)
    return total / 2 ** (len(ws) - 1)


def k5_matrix(weights: Sequence[Any]) -> Array:
    """The non-negative matrix ``M = 2^-l sum_chains |W_(l+1,r_n)| ... |W_(r_1,0)|``.

    Computed by the recursion ``M[0] = I``,
    ``M[t] = sum_{s<t} |W_(t,s)| M[s]`` (with ``2^-1`` per layer crossed:
    :func:`~lipjax.bounds.common.chain_sum`, shared with :func:`k1`), so
    ``M = M[l+1]`` costs ``O(l^2)`` matrix products.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.

    Returns:
      ``M``, shape ``(a_{l+1}, a_0)``, entrywise non-negative, and
      ``|W_l D_l ... D_1 W_0| <= M`` entrywise for every pattern ``D``.
    """
    ws = validate_weights(weights)
    prods = partial_products(ws)
    start = np.eye(ws[0].shape[1])
    return chain_sum(len(ws), start, lambda t, s, m_s: np.abs(prods[(t, s)]) @ m_s)


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
