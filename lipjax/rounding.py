"""Certificates that survive float rounding: the error bound of an exported forward pass.

A radius computed from *computed* logits ``f~`` is only a certificate for the exact
network ``f`` once the rounding error ``f~ - f`` is subtracted from the margin. Each
exported layer kind bounds its own error (``ExportKind.rounding``, derivations in
:mod:`lipjax.ops.rounding` and next to each kind); the network composes them:
with ``N_k`` a bound of the exact activation's norm and ``E_k`` of its error,

    ``E_k = L_k E_{k-1} + delta_k(N_{k-1} + E_{k-1})``,   ``N_k = output_norm_k(N_{k-1})``,

since the computed layer input ``x~`` satisfies
``||fl(f_k(x~)) - f_k(x)|| <= ||fl(f_k(x~)) - f_k(x~)|| + L_k ||x~ - x||``; unrolled,
``E = sum_k delta_k prod_{j > k} L_j``. With a normalised head the body's error
``E_body`` and the head's own rounding are kept apart (the LLN radius divides the
body's error by ``L_body`` only).

Certification evaluates in float64 where the backend has it (CPU, GPU: float32
arrays are exact in float64, so the network is the same; the bound with
``u = 2^-53`` is about ``1e-9`` of the float32 one) and in float32 elsewhere (TPU).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lipjax.layers import kinds
from lipjax.ops import rounding as fe

PRECISIONS = ("auto", "float32", "float64")
_FLOAT64_BACKENDS = ("cpu", "gpu", "cuda", "rocm")


class RoundingWarning(UserWarning):
    """A certificate that could not account for float rounding (a layer without a bound)."""


@dataclasses.dataclass(frozen=True)
class RoundingBound:
    """Bound of the float rounding of an exported model's logits, per example.

    Attributes:
      logit_error: ``(N,)`` bound of the l2 norm of (computed - exact) logits; with a
        normalised head, of the head's own rounding only (on the computed features).
      feature_error: ``(N,)`` bound of the error of the head's input (zeros without a head).
      dtype: the format evaluated in (``"float32"`` or ``"float64"``).
    """

    logit_error: np.ndarray
    feature_error: np.ndarray
    dtype: str

    def worst_logit_shift(self, head_lipschitz: float = 1.0) -> float:
        """``max_i (logit_error + head_lipschitz * feature_error)``: a summary for reports."""
        total = self.logit_error + head_lipschitz * self.feature_error
        return float(total.max()) if total.size else 0.0


def input_norms(x) -> np.ndarray:
    """Per-example ``||x_i||_2`` in float64, inflated by ``gamma_{n+2}(2^-53)`` (the float64
    rounding of the norm itself), so that it is an upper bound."""
    x = np.asarray(x)
    flat = np.asarray(x.reshape(x.shape[0], -1), np.float64)
    if not np.all(np.isfinite(flat)):
        raise ValueError("inputs contain NaN or inf: no rounding bound exists")
    return np.linalg.norm(flat, axis=1) * (1.0 + fe.gamma(flat.shape[1] + 2, fe.UNIT_ROUNDOFF["float64"]))


def _layer(layer, tracked: fe.Tracked, u: float, index: int) -> fe.Tracked:
    kind = kinds.lookup(layer.kind)
    slices = (
        [layer.arrays]
        if layer.depth == 1
        else [{k: v[i] for k, v in layer.arrays.items()} for i in range(layer.depth)]
    )
    try:
        for arrays in slices:
            tracked = kinds.propagate(kind, arrays, layer.config, layer.input_shape, tracked, u)
    except fe.NoRoundingBound as err:
        raise fe.NoRoundingBound(f"layer {index} ({layer.kind}): {err}") from None
    return tracked


def network_rounding(
    layers: Sequence, has_head: bool, input_norm, dtype="float32", input_error=0.0
) -> RoundingBound:
    """Rounding bound of an exported network's logits for inputs of norms ``input_norm``.

    Args:
      layers: the :class:`lipjax.export.ExportedLayer` records, in order.
      has_head: whether the last layer is a normalised head (its error is reported apart).
      input_norm: ``(N,)`` (or scalar) bounds of the inputs' l2 norms.
      dtype: the format of the forward pass (unit roundoff ``2^-24`` or ``2^-53``).
      input_error: ``(N,)`` or scalar: error of the input itself (e.g. a float64 input
        rounded to float32 is within ``2^-24 ||x||``).

    Returns:
      A :class:`RoundingBound` (every entry inflated by :data:`lipjax.ops.rounding.BOUND_SLACK`).

    Raises:
      NoRoundingBound: a layer's kind (or its config) has no rounding bound.
      ValueError: negative or non-finite norms or errors.
    """
    u = fe.unit_roundoff(dtype)
    norm = fe.check_input_norm(input_norm)
    error = np.broadcast_to(fe.check_input_norm(input_error), norm.shape).astype(np.float64)
    tracked = fe.Tracked(norm, error)
    body = layers[:-1] if has_head else layers
    for index, layer in enumerate(body):
        tracked = _layer(layer, tracked, u, index)
    feature_error = np.zeros_like(tracked.error)
    if has_head:
        head = layers[-1]
        feature_error = tracked.error
        own = kinds.propagate(
            kinds.lookup(head.kind),
            head.arrays,
            head.config,
            head.input_shape,
            fe.start(tracked.computed_norm),
            u,
        )
        tracked = own
    slack = 1.0 + fe.BOUND_SLACK
    return RoundingBound(
        np.asarray(tracked.error * slack, np.float64), np.asarray(feature_error * slack), np.dtype(dtype).name
    )


def certification_dtype(precision: str = "auto") -> str:
    """The format certificates are computed in: ``"auto"`` is float64 on CPU and GPU, float32 on TPU
    (with a :class:`RoundingWarning`: TPU float32 matmuls are not IEEE float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    dtype = precision
    if precision == "auto":
        dtype = "float64" if jax.default_backend() in _FLOAT64_BACKENDS else "float32"
    if dtype == "float32" and jax.default_backend() == "tpu":
        warnings.warn(
            "the float32 rounding bound assumes IEEE float32 products and sums; TPU matmuls at "
            "'highest' precision emulate float32 with bfloat16 passes, so the subtracted bound is "
            "not proven there: certify on CPU or GPU (float64) for a proof",
            RoundingWarning,
            stacklevel=3,
        )
    return dtype


def forward(exported, x, dtype: str, batch_size: int | None = None) -> np.ndarray:
    """Logits of ``x`` as a numpy array of ``dtype``: float32 through ``exported.apply``;
    float64 with the same jitted interpreter under ``jax.enable_x64`` (arrays cast up exactly)."""
    if dtype == "float32":
        return np.asarray(exported.apply(x, batch_size=batch_size))
    x = np.asarray(x)
    if x.shape[1:] != exported.input_shape:
        raise ValueError(f"expected inputs of shape (N, {exported.input_shape}); got {x.shape}")
    step = batch_size or max(len(x), 1)
    with jax.enable_x64(True):
        arrays = tuple({k: jnp.asarray(v, jnp.float64) for k, v in a.items()} for a in exported._arrays)
        chunks = [
            np.asarray(exported._jitted(jnp.asarray(x[i : i + step], jnp.float64), arrays))
            for i in range(0, len(x), step)
        ]
    out = np.concatenate(chunks) if chunks else np.zeros((0,), np.float64)
    if out.dtype != np.float64:
        raise RuntimeError(f"the float64 forward pass returned {out.dtype}: a layer casts down")
    return out


def certified_logits(exported, x, batch_size: int | None = None, precision: str = "auto"):
    """Logits for certification and their rounding bound.

    Args:
      exported: a :class:`lipjax.export.Exported` model.
      x: ``(N, *input_shape)`` inputs.
      batch_size: inputs per forward pass.
      precision: ``"auto"``, ``"float32"`` or ``"float64"`` (see :func:`certification_dtype`).

    Returns:
      ``(logits, bound)``: numpy logits in the format used, and the :class:`RoundingBound`
      for them, or None (with a :class:`RoundingWarning`) when a layer has no bound.
    """
    dtype = certification_dtype(precision)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected floating-point inputs; got dtype {x.dtype}")
    logits = forward(exported, x, dtype, batch_size)
    norms = input_norms(x)
    # An input wider than the format is rounded once on the way in.
    cast = fe.unit_roundoff(dtype) * norms if np.finfo(x.dtype).bits > np.finfo(dtype).bits else 0.0
    try:
        bound = network_rounding(exported.layers, exported.has_head, norms, dtype, cast)
    except fe.NoRoundingBound as err:
        warnings.warn(
            f"certified radii do not account for float rounding ({err}); they are computed in "
            f"{dtype} and hold for the computed network, not provably for the exact one",
            RoundingWarning,
            stacklevel=3,
        )
        bound = None
    return logits, bound
