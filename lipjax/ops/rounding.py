"""Forward error analysis of floating-point evaluation (numpy float64, on exported arrays).

Every exported layer kind with a rounding bound describes its forward pass as a
few steps on a :class:`Tracked` pair ``(norm, error)``: ``norm`` bounds the l2 norm
of the *exact* intermediate value (per example), ``error`` bounds the l2 distance
between the *computed* value and the exact one. The steps below push such a pair
through one operation, assuming IEEE arithmetic with unit roundoff ``u``
(``fl(a op b) = (a op b)(1 + d)``, ``|d| <= u``; ``u = 2^-24`` in float32,
``2^-53`` in float64, round to nearest).

The key lemma (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
§3.1, Lemma 3.4 and eq. (3.5)): a sum of ``n`` products computed in *any* order
(pairwise, blocked, with fused multiply-adds) satisfies
``|fl(w . x) - w . x| <= gamma_n |w| . |x|`` with ``gamma_n = n u / (1 - n u)``.
Every output of a matrix product or convolution is such a sum, so
``||fl(A x) - A x||_2 <= gamma_n || |A| ||_2 ||x||_2``, where ``|A|`` is the
entrywise absolute value (for a convolution: of the matrix of taps) and, by the
Schur test, ``|| |A| ||_2 <= sqrt(max row abs sum * max column abs sum)``.
A bias added to the dot product is one more term (``gamma_{n+1}``; Higham Lemma
3.3 merges the extra rounding), and a broadcast bias of norm ``||b||`` per output
pixel has norm ``||b|| sqrt(pixels)``.

All the arithmetic here is float64 on float32 inputs; its own relative error
(``~1e-15``) is covered by :data:`BOUND_SLACK`, applied once per network.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}
"""Unit roundoff ``u`` (half the machine epsilon) of the formats lipjax evaluates in."""

BOUND_SLACK = 1e-6
"""Relative inflation of a network's final error bound: covers the float64 rounding of the
bound's own arithmetic (a few hundred operations, each of relative error 2^-53)."""


class NoRoundingBound(ValueError):
    """A layer whose floating-point error lipjax cannot bound (e.g. library transcendental functions)."""


class Tracked(NamedTuple):
    """Bounds on one intermediate value, per example.

    Attributes:
      norm: upper bound of the l2 norm of the exact value.
      error: upper bound of the l2 norm of (computed value - exact value).
    """

    norm: np.ndarray
    error: np.ndarray

    @property
    def computed_norm(self) -> np.ndarray:
        """Bound of the computed value's norm: ``norm + error``."""
        return self.norm + self.error


def unit_roundoff(dtype) -> float:
    """``u`` of ``dtype`` (float32 or float64); ``ValueError`` for any other format."""
    name = np.dtype(dtype).name
    if name not in UNIT_ROUNDOFF:
        raise ValueError(f"no rounding analysis for dtype {name}: use float32 or float64")
    return UNIT_ROUNDOFF[name]


def gamma(n: int, u: float) -> float:
    """``gamma_n = n u / (1 - n u)`` (Higham eq. 3.8): error factor of ``n`` chained roundings."""
    if n < 0 or not 0 < u < 1:
        raise ValueError(f"gamma needs n >= 0 and 0 < u < 1; got n={n}, u={u}")
    if n * u >= 0.5:
        raise ValueError(f"gamma_{n} with u={u} is meaningless (n u >= 1/2): the layer is too wide")
    return n * u / (1 - n * u)


def check_input_norm(input_norm) -> np.ndarray:
    """``input_norm`` as a float64 array; ``ValueError`` if negative, NaN or infinite."""
    norm = np.asarray(input_norm, np.float64)
    if not np.all(np.isfinite(norm)) or np.any(norm < 0):
        raise ValueError(f"input_norm must be finite and >= 0; got {input_norm}")
    return norm


def start(input_norm) -> Tracked:
    """The layer's (already computed) input: norm ``input_norm``, no error of its own."""
    norm = check_input_norm(input_norm)
    return Tracked(norm, np.zeros_like(norm))


def abs_matrix_norm_bound(matrix) -> float:
    """Schur test: ``|| |A| ||_2 <= sqrt(max_i sum_j |a_ij| * max_j sum_i |a_ij|)``."""
    a = np.abs(np.asarray(matrix, np.float64))
    if a.size == 0:
        return 0.0
    return math.sqrt(float(a.sum(axis=1).max()) * float(a.sum(axis=0).max()))


def abs_conv_norm_bound(kernel) -> float:
    """``|| |A| ||_2`` bound for the tap matrix of an HWIO convolution, any stride and padding.

    An output pixel of channel ``o`` reads at most every tap ``(a, b, i)`` once: row sums are
    at most ``max_o sum_{a,b,i} |K|``. An input pixel of channel ``i`` is read by at most one
    output pixel per tap ``(a, b, o)`` (zero or circular padding, stride >= 1): column sums
    are at most ``max_i sum_{a,b,o} |K|``. The adjoint has the transposed tap matrix, same bound.
    """
    k = np.abs(np.asarray(kernel, np.float64))
    if k.ndim != 4:
        raise ValueError(f"conv kernel must be HWIO (4-D); got shape {k.shape}")
    if k.size == 0:
        return 0.0
    return math.sqrt(float(k.sum(axis=(0, 1, 2)).max()) * float(k.sum(axis=(0, 1, 3)).max()))


def linear(
    t: Tracked, op_norm: float, abs_norm: float, terms: int, u: float, bias_norm: float = 0.0
) -> Tracked:
    """``y = A x (+ b)`` with ``||A|| <= op_norm``, ``|| |A| || <= abs_norm``, ``terms`` products per output.

    ``||fl(A x~ + b) - (A x + b)|| <= ||A|| e + gamma_m (|| |A| || ||x~|| + ||b||)``,
    ``m = terms (+ 1 with a bias)``, ``x~`` the computed input.
    """
    m = terms + (1 if bias_norm > 0 else 0)
    g = gamma(m, u)
    return Tracked(
        op_norm * t.norm + bias_norm,
        op_norm * t.error + g * (abs_norm * t.computed_norm + bias_norm),
    )


def scale(t: Tracked, factor: float, u: float) -> Tracked:
    """Entrywise product with (or division by) exact numbers of magnitude ``<= factor``: one rounding each."""
    return Tracked(factor * t.norm, factor * t.error + u * factor * t.computed_norm)


def add(a: Tracked, b: Tracked, u: float, norm_bound=None) -> Tracked:
    """``a + b`` or ``a - b`` entrywise; ``norm_bound``: a known bound of the exact result's norm.

    ``fl(a~ +- b~) = (a~ +- b~)(1 + d)``: error ``e_a + e_b + u (||exact|| + e_a + e_b)``.
    """
    norm = a.norm + b.norm if norm_bound is None else np.minimum(a.norm + b.norm, norm_bound)
    carried = a.error + b.error
    return Tracked(norm, carried + u * (norm + carried))


def translate(t: Tracked, offset_norm: float, u: float) -> Tracked:
    """``x +- c`` for an exact constant ``c`` of norm ``offset_norm`` (after broadcasting)."""
    return add(t, Tracked(np.asarray(offset_norm, np.float64), np.zeros(())), u)


def activation(t: Tracked, name: str, u: float) -> Tracked:
    """A monotone activation by name (see :data:`lipjax.ops.ACTIVATIONS`), entrywise.

    * ``relu``: exact in floating point, 1-Lipschitz, ``|relu(x)| <= |x|``: nothing changes.
    * ``leaky_relu``: ``0.01 x`` on negatives; the constant 0.01 is rounded to the format
      and the product rounded once: ``gamma_2`` relative error.
    * Transcendental ones (softplus, sigmoid, tanh, elu) come from math libraries without a
      guaranteed error: :class:`NoRoundingBound`.
    """
    if name == "relu":
        return t
    if name == "leaky_relu":
        return Tracked(t.norm, t.error + gamma(2, u) * t.computed_norm)
    raise NoRoundingBound(
        f"activation {name!r} is computed by a math library without a guaranteed error bound"
    )
