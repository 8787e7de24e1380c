"""Weight constraints: small pure maps from a raw kernel to a constrained one.

A :class:`KernelConstraint` composes them as ``W -> after(before(V) / n)``:
``before`` maps the raw parameter ``V`` to a kernel (Frobenius or LLN-row
normalisation, Björck on the reshaped conv kernel, AOL rescaling, Cayley...),
``n`` is the operator norm of that kernel when ``operator_norm`` is set
(a power-iteration estimate while training, a guaranteed upper bound at export)
and 1 otherwise, and ``after`` is applied last (Björck after spectral
normalisation, which needs ``||W||_2 <= 1`` to converge). Constrained layers take
one as a parameter and export the resulting plain kernel, whose Lipschitz
constant the export certifies on the exported arrays, so a constraint only has
to be good, not exact.

Every map here works on Flax layouts: dense kernels (in, out), conv kernels HWIO.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from lipjax.ops.aol import aol_conv_kernel, aol_dense_kernel
from lipjax.ops.cayley import cayley_dense_kernel
from lipjax.ops.orthogonal import bjorck
from lipjax.ops.skew import skew_symmetric
from lipjax.ops.skew_exp import check_terms, rescale_to_norm, taylor_exp_matrix

KernelMap = Callable[[jax.Array], jax.Array]
ShapeMap = Callable[[tuple[int, ...]], tuple[int, ...]]


def frobenius_normalize(kernel: jax.Array) -> jax.Array:
    """``W / ||W||_F``; since ``||W||_2 <= ||W||_F`` the result has operator norm <= 1.

    For a convolution the Frobenius norm of the kernel bounds only a dense use of
    it; conv layers therefore still divide by the operator norm afterwards.
    """
    return kernel / jnp.maximum(jnp.linalg.norm(kernel.ravel()), 1e-12)


def normalize_columns(kernel: jax.Array) -> jax.Array:
    """Each output's weight vector (a column of a Flax kernel) scaled to unit l2 norm (LLN rows)."""
    return kernel / jnp.maximum(jnp.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)


def bjorck_reshaped(kernel: jax.Array, num_iters: int) -> jax.Array:
    """Björck on the ``(prod(shape[:-1]), out)`` matrix of a kernel, after Frobenius normalisation.

    For an HWIO kernel this orthonormalises the ``(kh kw C_in, C_out)`` matrix
    (deel-lip's SpectralConv2D); the shape is kept.
    """
    matrix = frobenius_normalize(jnp.reshape(kernel, (-1, kernel.shape[-1])))
    return bjorck(matrix, num_iters).reshape(kernel.shape)


@dataclasses.dataclass(frozen=True)
class KernelConstraint:
    """``W = after(before(V) / n)`` with ``n`` the operator norm of ``before(V)`` or 1.

    Attributes:
      name: a readable name (shown in errors and summaries).
      before: map from the raw parameter to a kernel (identity when None).
      operator_norm: divide by the operator norm of ``before(V)``.
      after: map applied after the division (identity when None).
      parameter_shape: the raw parameter's shape for a kernel of a given shape
        (e.g. square for Cayley); the kernel's own shape when None.
    """

    name: str
    before: KernelMap | None = None
    operator_norm: bool = False
    after: KernelMap | None = None
    parameter_shape: ShapeMap | None = None

    def raw_shape(self, kernel_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the trainable parameter behind a kernel of ``kernel_shape``."""
        return tuple(self.parameter_shape(kernel_shape)) if self.parameter_shape else tuple(kernel_shape)

    def prepare(self, raw: jax.Array, kernel_shape: tuple[int, ...] | None = None) -> jax.Array:
        """``before(V)``, cropped to ``kernel_shape`` (leading corner): the kernel whose norm ``n`` is taken.

        Cropping keeps a sub-matrix of ``before(V)``, whose norm is no larger (how a
        square orthogonal map serves a layer with ``in != out`` features).
        """
        kernel = self.before(raw) if self.before is not None else raw
        if kernel_shape is not None and tuple(kernel.shape) != tuple(kernel_shape):
            kernel = kernel[tuple(slice(0, n) for n in kernel_shape)]
        return kernel

    def finish(self, prepared: jax.Array, norm: jax.Array | float | None = None) -> jax.Array:
        """``after(prepared / n)``; ``norm`` is required exactly when ``operator_norm`` is set."""
        if self.operator_norm:
            if norm is None:
                raise ValueError(f"constraint {self.name!r} divides by the operator norm: pass norm")
            prepared = prepared / jnp.asarray(norm, prepared.dtype)
        return self.after(prepared) if self.after is not None else prepared


def spectral(bjorck_iters: int = 0) -> KernelConstraint:
    """``W / ||W||_2``, then ``bjorck_iters`` Björck steps (an orthonormal kernel)."""
    after = partial(bjorck, num_iters=bjorck_iters) if bjorck_iters else None
    return KernelConstraint(f"spectral(bjorck_iters={bjorck_iters})", operator_norm=True, after=after)


def bjorck_then_spectral(bjorck_iters: int) -> KernelConstraint:
    """Björck on the reshaped kernel (deel-lip's conv recipe), then division by the operator norm."""
    before = partial(bjorck_reshaped, num_iters=bjorck_iters) if bjorck_iters else None
    return KernelConstraint(f"bjorck_then_spectral({bjorck_iters})", before=before, operator_norm=True)


FROBENIUS = KernelConstraint("frobenius", before=frobenius_normalize)
"""``W / ||W||_F`` (no state; exact gradient-norm preservation with one output)."""

LLN_ROWS = KernelConstraint("lln_rows", before=normalize_columns)
"""Unit-norm weight vector per output (the normalised last layer)."""

AOL_DENSE = KernelConstraint("aol", before=aol_dense_kernel)
"""AOL rescaling ``diag(d) W^T``, ``d_i = (sum_j |W^T W|_ij)^{-1/2}``: norm <= 1 with no iteration."""

AOL_CONV = KernelConstraint("aol_conv", before=aol_conv_kernel)
"""AOL rescaling of an HWIO kernel (per input channel), operator norm <= 1 for every padding and stride."""


def _square(kernel_shape: tuple[int, ...]) -> tuple[int, int]:
    n = max(kernel_shape)
    return (n, n)


CAYLEY = KernelConstraint("cayley", before=cayley_dense_kernel, parameter_shape=_square)
"""Orthogonal ``cayley(V - V^T)`` of a square parameter (n = max(in, out)), cropped to (in, out)."""


def soc_dense_kernel(raw: jax.Array, terms: int, max_norm: float) -> jax.Array:
    """``T_n(A) = sum_{k <= n} A^k / k!`` for ``A = V - V^T`` shrunk to ``||A|| <= max_norm``.

    The truncated series is only nearly orthogonal; a dense layer exports the matrix
    itself, so its certificate (the SVD of the exported kernel) already contains the
    truncation error, with no remainder estimate needed.
    """
    return taylor_exp_matrix(rescale_to_norm(skew_symmetric(raw), max_norm), terms)


def soc(terms: int = 12, max_norm: float = 1.0) -> KernelConstraint:
    """Skew-orthogonal (exponential) dense kernel, see :func:`soc_dense_kernel`."""
    check_terms(terms)
    if not max_norm > 0:
        raise ValueError(f"SOC max_norm must be positive; got {max_norm}")
    before = partial(soc_dense_kernel, terms=terms, max_norm=max_norm)
    return KernelConstraint(f"soc(terms={terms})", before=before, parameter_shape=_square)
