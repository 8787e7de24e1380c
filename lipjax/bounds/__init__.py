"""Lipschitz upper and lower bounds of feed-forward ReLU networks.

A network ``f = W_l R W_{l-1} R ... R W_0`` (``R`` = ReLU, biases anywhere: they
do not change the upper bounds) has, almost everywhere, the Jacobian

    J(x) = W_l D_l(x) W_{l-1} ... D_1(x) W_0,   D_r(x) = diag(0 or 1).

For an induced matrix norm ``||.||_p`` (p in {1, 2, inf}) its Lipschitz constant
is ``L = sup_x ||J(x)||_p``. This package computes, in float64 numpy:

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

with the ordering, for p in {1, inf} (proved in the docstrings of :mod:`~lipjax.bounds.upper` and checked
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

Modules: :mod:`~lipjax.bounds.common` (norms, validation, partial products, the
chain dynamic programming, the forward pass), :mod:`~lipjax.bounds.upper` (the
upper bounds), :mod:`~lipjax.bounds.lower` (lower bounds),
:mod:`~lipjax.bounds.from_flax` (Flax networks as matrices) and
:mod:`~lipjax.bounds.examples` (a network with a known constant).
"""

from lipjax.bounds.common import (
    matrix_norm,
    parse_norm,
    partial_products,
    relu_forward,
    validate_weights,
)
from lipjax.bounds.examples import hat_network
from lipjax.bounds.from_flax import (
    biases_from_dense_params,
    dense_layers,
    weights_from_dense_params,
    weights_from_flax,
)
from lipjax.bounds.lower import exact_lipschitz_1d, jacobian_at, lipschitz_lower_bound
from lipjax.bounds.upper import (
    DEFAULT_MAX_PATTERNS,
    DEFAULT_MAX_SUBSETS,
    k1,
    k1_bruteforce,
    k3,
    k4,
    k5,
    k5_matrix,
    k_exact,
    k_star,
    lipschitz_bounds,
    pattern_products,
)

__all__ = [
    "DEFAULT_MAX_PATTERNS",
    "DEFAULT_MAX_SUBSETS",
    "biases_from_dense_params",
    "dense_layers",
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
    "relu_forward",
    "validate_weights",
    "weights_from_dense_params",
    "weights_from_flax",
]
