"""Exponential of a skew-symmetric operator by a truncated Taylor series (SOC), with an honest bound.

``exp(A)`` is orthogonal for a skew-symmetric ``A``. Skew orthogonal convolutions
(Singla and Feizi, 2021) apply it by the truncated series
``T_n(A) x = sum_{k=0}^{n} A^k x / k!``, which is *not* orthogonal: other
libraries' SOC layers have been measured above 1. The certificate here is

``||T_n(A)||_2 <= ||exp(A)||_2 + ||sum_{k>n} A^k / k!||_2 <= e^{mu} + R``,
``R = sum_{k>n} a^k / k! <= a^{n+1} / (n+1)! * e^a``

with ``a`` a guaranteed upper bound of ``||A||_2`` (the Lagrange remainder of the
scalar series, all terms non-negative) and ``mu`` a bound of the largest
eigenvalue of the symmetric part ``(A + A^T) / 2`` (``||exp(A)|| <= e^{mu(A)}``, the
logarithmic-norm bound): ``mu = 0`` for an exactly skew ``A``, which the exported
arrays are (``fl(w_ij - w_ji) = -fl(w_ji - w_ij)``), but it is measured rather
than assumed. The exported constant is ``(e^mu + R) (1 + ROUNDING_SLACK)``.

Generators (:mod:`lipjax.ops.skew`): dense ``A = W - W^T``; convolution with the
skew kernel ``S = K - flip(K)^T`` (odd kernel, stride 1, ``"SAME"`` or ``"CIRCULAR"``
padding), whose operator ``C - C^T`` is skew on the whole image. SOC keeps
``||A||`` small so that few terms suffice: :func:`rescale_to_norm` divides the
generator by a norm estimate when it exceeds ``max_norm``.

References:
  Singla and Feizi, Skew orthogonal convolutions, ICML 2021.
  Meunier et al., A dynamical system perspective for Lipschitz neural networks,
  ICML 2022, Section 3.3 (the exact flow ``exp(A / 2)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from lipjax.ops.conv import PaddingLike, conv
from lipjax.ops.skew import check_skew_conv, check_square
from lipjax.ops.spectral_bounds import (
    conv_spectral_norm_bound,
    dense_spectral_norm_bound,
    with_rounding_slack,
)


def check_terms(terms: int) -> int:
    """Validates the number of Taylor terms ``n`` (the series stops at ``A^n / n!``)."""
    if isinstance(terms, bool) or not isinstance(terms, int | np.integer) or terms < 1:
        raise ValueError(f"SOC terms must be an integer >= 1 (highest power of A); got {terms!r}")
    return int(terms)


def taylor_exp(apply_a: Callable[[jax.Array], jax.Array], x: jax.Array, terms: int) -> jax.Array:
    """``sum_{k=0}^{n} A^k x / k!`` by the recurrence ``t_0 = x``, ``t_k = A t_{k-1} / k``.

    Args:
      apply_a: the linear map ``x -> A x``.
      x: any array in its domain.
      terms: ``n >= 1``.

    Returns:
      the truncated series applied to ``x``, same shape.
    """
    terms = check_terms(terms)

    def step(k, carry):
        term, total = carry
        term = apply_a(term) / k.astype(x.dtype)
        return term, total + term

    _, total = jax.lax.fori_loop(1, terms + 1, step, (x, x))
    return total


def skew_exp_dense(x: jax.Array, a: jax.Array, terms: int = 12) -> jax.Array:
    """Dense SOC step ``x T_n(A)`` for row vectors, ``T_n(A) = sum_{k<=n} A^k / k!``.

    Args:
      x: shape (..., n).
      a: skew-symmetric (n, n) (e.g. :func:`lipjax.ops.skew.skew_symmetric`).
      terms: ``n``.

    Returns:
      shape (..., n).
    """
    check_square(a, "SOC generator A")
    return taylor_exp(lambda v: v @ a, x, terms)


def taylor_exp_matrix(a: jax.Array, terms: int = 12) -> jax.Array:
    """The matrix ``T_n(A)`` itself (a dense SOC layer can export it as a plain dense kernel)."""
    check_square(a, "SOC generator A")
    return taylor_exp(lambda m: m @ a, jnp.eye(a.shape[-1], dtype=a.dtype), terms)


def skew_exp_conv(
    x: jax.Array,
    skew_kernel: jax.Array,
    terms: int = 12,
    padding: PaddingLike = "SAME",
    algorithm: str = "direct",
) -> jax.Array:
    """Skew orthogonal convolution ``sum_{k<=n} S^k x / k!`` of NHWC images (``S`` applied as a conv).

    Args:
      x: NHWC images with c channels.
      skew_kernel: HWIO (kh, kw, c, c), odd sizes (e.g. :func:`lipjax.ops.skew.skew_conv_kernel`).
      terms: ``n``.
      padding: ``"SAME"`` or ``"CIRCULAR"`` (the adjoint is then the flipped kernel).
      algorithm: as in :func:`lipjax.ops.conv` (``"auto"`` while training).

    Returns:
      images of the same shape.
    """
    padding = check_skew_conv(skew_kernel, padding)
    if x.shape[-1] != skew_kernel.shape[2]:
        raise ValueError(f"input has {x.shape[-1]} channels, SOC kernel expects {skew_kernel.shape[2]}")
    return taylor_exp(lambda v: conv(v, skew_kernel, (1, 1), padding, algorithm), x, terms)


def generator_norm_estimate(generator: jax.Array) -> jax.Array:
    """A differentiable guaranteed bound of ``||A||_2``: Frobenius for a matrix; for an HWIO
    kernel ``sum_{a, b} ||S[a, b]||_F`` (each DFT block ``sum_{a, b} S[a, b] e^{-i ...}``
    has norm at most that, and zero padding takes a sub-matrix)."""
    if generator.ndim == 2:
        return jnp.sqrt(jnp.sum(generator**2))
    return jnp.sum(jnp.sqrt(jnp.sum(generator**2, axis=(2, 3))))


def rescale_to_norm(
    generator: jax.Array,
    max_norm: float = 1.0,
    norm: jax.Array | None = None,
    eps: float = 1e-12,
) -> jax.Array:
    """``A min(1, max_norm / b)``: shrinks the generator when its norm estimate ``b`` exceeds ``max_norm``.

    Keeps the remainder ``R`` small (``||A|| <= 1`` and 12 terms: ``R <= e / 13! ~ 4e-10``);
    a positive rescaling keeps the generator skew. The scaling only serves the
    accuracy of the truncated series: the certificate is computed afterwards on
    the exported generator, whatever ``b`` was.

    Args:
      generator: skew matrix (n, n) or skew HWIO kernel.
      max_norm: the target bound of ``||A||``.
      norm: an estimate ``b`` of ``||A||`` (e.g. a power-iteration value, tight
        but from below); ``None`` uses :func:`generator_norm_estimate`, guaranteed
        but loose (about 3x on a random 3x3 kernel), so ``||A|| <= max_norm`` surely.
      eps: floor of ``b``.
    """
    if max_norm <= 0:
        raise ValueError(f"SOC max_norm must be positive; got {max_norm}")
    b = generator_norm_estimate(generator) if norm is None else norm
    return generator * jnp.minimum(1.0, max_norm / jnp.maximum(b, eps))


def taylor_remainder_bound(norm_bound: float, terms: int) -> float:
    """``R = a^{n+1} / (n+1)! * e^a >= sum_{k>n} a^k / k!`` for ``a = norm_bound >= 0``, in float64.

    Args:
      norm_bound: a guaranteed upper bound of ``||A||_2``.
      terms: ``n``.

    Returns:
      an upper bound of ``||exp(A) - T_n(A)||_2`` (rounded up by ``1e-12`` relative).
    """
    terms = check_terms(terms)
    a = float(norm_bound)
    if not (a >= 0 and math.isfinite(a)):
        raise ValueError(f"the norm bound of A must be finite and non-negative; got {norm_bound}")
    if a == 0:
        return 0.0
    log_r = (terms + 1) * math.log(a) - math.lgamma(terms + 2) + a
    return math.exp(log_r) * (1 + 1e-12)


def skew_exp_lipschitz_bound(norm_bound: float, symmetric_bound: float, terms: int) -> float:
    """``(e^{mu} + R) (1 + ROUNDING_SLACK)``: the certified constant of ``T_n(A)``.

    Args:
      norm_bound: guaranteed upper bound of ``||A||_2``.
      symmetric_bound: guaranteed upper bound of ``||(A + A^T) / 2||_2`` (0 when exactly skew).
      terms: ``n``.
    """
    return with_rounding_slack(math.exp(float(symmetric_bound)) + taylor_remainder_bound(norm_bound, terms))


def skew_exp_dense_lipschitz_bound(a: ArrayLike, terms: int) -> float:
    """Certified constant of the exported dense SOC step with generator ``a`` (float64, exported array)."""
    a64 = np.asarray(a, np.float64)
    if a64.ndim != 2 or a64.shape[0] != a64.shape[1]:
        raise ValueError(f"SOC generator A must be square (n, n); got shape {a64.shape}")
    symmetric = (a64 + a64.T) / 2
    sym_bound = dense_spectral_norm_bound(symmetric) if np.any(symmetric) else 0.0
    return skew_exp_lipschitz_bound(dense_spectral_norm_bound(a64), sym_bound, terms)


def skew_exp_conv_lipschitz_bound(
    skew_kernel: ArrayLike, input_hw: Sequence[int], terms: int, padding: PaddingLike = "SAME"
) -> float:
    """Certified constant of the exported SOC convolution on ``input_hw`` images (float64).

    ``||A||`` and ``||(A + A^T)/2||`` are bounded on the real operator by
    :func:`lipjax.ops.spectral_bounds.conv_spectral_norm_bound`; the symmetric
    part is the convolution with ``(S + flip(S)^T) / 2`` (same padding).
    """
    s = np.asarray(skew_kernel, np.float64)
    padding = check_skew_conv(s, padding)
    symmetric = (s + np.flip(s, (0, 1)).swapaxes(2, 3)) / 2
    sym_bound = conv_spectral_norm_bound(symmetric, input_hw, (1, 1), padding) if np.any(symmetric) else 0.0
    norm = conv_spectral_norm_bound(s, input_hw, (1, 1), padding)
    return skew_exp_lipschitz_bound(norm, sym_bound, terms)
