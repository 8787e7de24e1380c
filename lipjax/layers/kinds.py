"""Exported layer kinds: one typed declaration per kind, registered where it is written.

An exported layer is a record ``(kind, config, arrays)``. Its :class:`ExportKind`
says, in one place, everything the exported-model interpreter
(:mod:`lipjax.export`) and the loader need: the kind's name in the file, the
forward pass built from :mod:`lipjax.ops`, a guaranteed upper bound of its l2
Lipschitz constant computed *on the exported arrays*, the bound of its float
rounding error (:data:`RoundingFn`, :mod:`lipjax.ops.rounding`), and the names of its
arrays and config fields. Each layer module declares its kinds next to the
layer and :func:`register` s them; a layer's ``export_record`` builds its record
through :meth:`ExportKind.record`, which checks the names against the
declaration, so a misspelt array or config key fails on the first export, not
at load time.

Loading never runs code from a file: a stored kind name is only looked up in
:data:`KINDS`, whose entries are functions of this package.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lipjax import ops
from lipjax.ops import rounding as fe
from lipjax.ops.conv import conv_output_hw
from lipjax.ops.spectral_bounds import with_rounding_slack

Arrays = Mapping[str, Any]
Config = Mapping[str, Any]
ApplyFn = Callable[[jax.Array, Arrays, Config], jax.Array]
"""``apply(x, arrays, config) -> y`` on a batch ``x``."""
BoundFn = Callable[[Mapping[str, np.ndarray], Config, tuple[int, ...]], float]
"""``lipschitz(arrays, config, input_shape) -> float``, a guaranteed upper bound."""
RoundingFn = Callable[[Mapping[str, np.ndarray], Config, tuple[int, ...], np.ndarray, float], fe.Tracked]
"""``rounding(arrays, config, input_shape, input_norm, u) -> Tracked(output_norm, delta)``.

For every computed input ``x`` with ``||x||_2 <= input_norm`` (per example, an array),
``delta`` bounds ``||fl(apply(x)) - apply(x)||_2`` when each elementary operation is
IEEE-rounded with unit roundoff ``u``, and ``output_norm`` bounds ``||apply(x)||_2``."""


@dataclasses.dataclass(frozen=True)
class ExportKind:
    """Declaration of one exported layer kind.

    Attributes:
      name: the kind's name in export files (unique).
      apply: forward pass ``apply(x, arrays, config)``, built from :mod:`lipjax.ops`.
      lipschitz: guaranteed upper bound of the l2 Lipschitz constant of ``apply``
        for one input of shape ``input_shape``, computed from the arrays
        (never from a stored number).
      arrays: names of the arrays every record of this kind holds.
      optional_arrays: names it may hold (e.g. ``bias``).
      config: names of its JSON config fields (all required).
      validate: replaces the name checks for kinds whose array names depend on
        the config (:data:`CHAIN`).
      rounding: forward error bound of ``apply`` in floating point (:data:`RoundingFn`,
        derivation in its docstring); None for kinds without one (FFT-based or
        transcendental ops), whose certificates say the rounding is not accounted for.
    """

    name: str
    apply: ApplyFn
    lipschitz: BoundFn
    arrays: tuple[str, ...] = ()
    optional_arrays: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    validate: Callable[[Config, Arrays], None] | None = None
    rounding: RoundingFn | None = None

    def check(self, config: Config, arrays: Arrays) -> None:
        """Raises ``ValueError`` naming any missing or unknown array or config field."""
        if self.validate is not None:
            self.validate(config, arrays)
            return
        missing = [n for n in self.arrays if n not in arrays]
        unknown = [n for n in arrays if n not in self.arrays and n not in self.optional_arrays]
        if missing or unknown:
            raise ValueError(
                f"layer kind {self.name!r}: missing arrays {missing}, unknown arrays {unknown} "
                f"(declared: {list(self.arrays)}, optional: {list(self.optional_arrays)})"
            )
        missing = [n for n in self.config if n not in config]
        unknown = [n for n in config if n not in self.config]
        if missing or unknown:
            raise ValueError(
                f"layer kind {self.name!r}: missing config fields {missing}, unknown config "
                f"fields {unknown} (declared: {list(self.config)})"
            )

    def record(self, config: Config | None = None, **arrays: Any) -> Record:
        """The checked record of one layer of this kind (arrays converted to float32)."""
        config = dict(config or {})
        arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items() if v is not None}
        self.check(config, arrays)
        return Record(self, config, arrays)


@dataclasses.dataclass(frozen=True)
class Record:
    """What a layer exports: its kind, JSON config and float32 arrays."""

    kind: ExportKind
    config: dict[str, Any]
    arrays: dict[str, np.ndarray]


KINDS: dict[str, ExportKind] = {}
"""Every registered kind by name (filled when :mod:`lipjax.layers` is imported)."""


def register(kind: ExportKind) -> ExportKind:
    """Adds ``kind`` to :data:`KINDS` and returns it (one declaration per name)."""
    existing = KINDS.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"layer kind {kind.name!r} is declared twice")
    KINDS[kind.name] = kind
    return kind


def lookup(name: str) -> ExportKind:
    """The registered kind called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer kind {name!r}; known: {sorted(KINDS)}") from None


# --- bound helpers shared by several declarations --------------------------------------------


def padding_from_json(config: Config):
    """The ``padding`` config field back as :func:`lipjax.ops.conv` takes it."""
    padding = config["padding"]
    return padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)


def padding_to_json(padding) -> str | list[list[int]]:
    """A validated padding spec in JSON form."""
    padding = ops.normalize_padding(padding)
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def dense_kernel_bound(arrays: Arrays, config: Config, input_shape: tuple[int, ...]) -> float:
    """``||kernel||_2`` bound (float64 SVD, with rounding slack)."""
    return ops.dense_spectral_norm_bound(arrays["kernel"])


def conv_kernel_bound(arrays: Arrays, config: Config, input_shape: tuple[int, ...]) -> float:
    """Operator-norm bound of the convolution on the real input size, stride and padding."""
    return ops.conv_spectral_norm_bound(
        arrays["kernel"], input_shape[:2], config["strides"], padding_from_json(config)
    )


def exactly_one(arrays: Arrays, config: Config, input_shape: tuple[int, ...]) -> float:
    """1: isometries, projections and sorts, exact in floating point."""
    return 1.0


def one_with_rounding(arrays: Arrays, config: Config, input_shape: tuple[int, ...]) -> float:
    """1 plus the float32 rounding slack (maps that are 1-Lipschitz only in exact arithmetic)."""
    return with_rounding_slack(1.0)


# --- rounding helpers shared by several declarations (see lipjax.ops.rounding) ---------------


def exact_rounding(arrays: Arrays, config: Config, input_shape, input_norm, u: float) -> fe.Tracked:
    """Copies, permutations, zero padding, truncation, sorts, max / min: no rounding at all.

    ``delta = 0``, ``output_norm = input_norm`` (each is a coordinate selection or permutation,
    possibly with zeros, so the norm never grows).
    """
    return fe.start(input_norm)


@dataclasses.dataclass(frozen=True)
class LinearOperator:
    """What the error analysis needs of a dense kernel or convolution on a given input.

    Attributes:
      norm: certified bound of ``||A||_2`` (the layer's Lipschitz bound).
      abs_norm: bound of ``|| |A| ||_2`` for the tap matrix (Schur test).
      terms: products summed per output of ``A x``.
      adjoint_terms: products (and partial sums) per output of ``A^T y``.
      pixels: output positions sharing one bias vector (1 for dense).
    """

    norm: float
    abs_norm: float
    terms: int
    adjoint_terms: int
    pixels: int


def dense_operator(arrays: Arrays, config: Config, input_shape) -> LinearOperator:
    """``x @ kernel`` with kernel (in, out): ``in`` products per output, ``out`` per adjoint output."""
    kernel = np.asarray(arrays["kernel"])
    norm = dense_kernel_bound(arrays, config, input_shape)
    return LinearOperator(norm, fe.abs_matrix_norm_bound(kernel), kernel.shape[0], kernel.shape[1], 1)


def conv_operator(arrays: Arrays, config: Config, input_shape) -> LinearOperator:
    """HWIO convolution: ``kh kw C_in`` products per output. The adjoint sums ``kh kw C_out``
    products; with circular padding it then folds the periodic extension back onto the
    image, adding at most ``ceil((2 n + k) / n)`` partial sums per axis (``n`` the image
    size, ``k`` the kernel's: the padded axis spans ``n + k - 1`` entries plus a shift < n)."""
    kernel = np.asarray(arrays["kernel"])
    kh, kw, c_in, c_out = kernel.shape
    padding = padding_from_json(config)
    out_hw = conv_output_hw(input_shape[:2], (kh, kw), config["strides"], padding)
    folds = 0
    if padding == "CIRCULAR":
        folds = sum(-(-(2 * int(n) + k) // int(n)) for n, k in zip(input_shape[:2], (kh, kw), strict=True))
    return LinearOperator(
        conv_kernel_bound(arrays, config, input_shape),
        fe.abs_conv_norm_bound(kernel),
        kh * kw * c_in,
        kh * kw * c_out + folds,
        int(out_hw[0] * out_hw[1]),
    )


def bias_norm(arrays: Arrays, pixels: int) -> float:
    """``||b||_2 sqrt(pixels)``: the norm of a bias broadcast over ``pixels`` output positions."""
    if "bias" not in arrays:
        return 0.0
    return float(np.linalg.norm(np.asarray(arrays["bias"], np.float64))) * math.sqrt(pixels)


def linear_rounding(operator: Callable[[Arrays, Config, tuple[int, ...]], LinearOperator]) -> RoundingFn:
    """Rounding of ``A x + b`` (dense or conv kinds).

    ``delta = gamma_m (|| |A| || ||x|| + ||b||_bcast)``, ``m = terms (+1 with a bias)``;
    ``output_norm = ||A|| ||x|| + ||b||_bcast`` (:func:`lipjax.ops.rounding.linear`).
    """

    def rounding(arrays, config, input_shape, input_norm, u):
        op = operator(arrays, config, tuple(input_shape))
        return fe.linear(
            fe.start(input_norm), op.norm, op.abs_norm, op.terms, u, bias_norm(arrays, op.pixels)
        )

    return rounding


def residual_rounding(
    operator: Callable[[Arrays, Config, tuple[int, ...]], LinearOperator],
    lipschitz: BoundFn,
    scale_first: bool,
) -> RoundingFn:
    """Rounding of the residual steps ``x - A^T (s * sigma(A x + b))`` (SLL: ``scale_first``)
    and ``x - s * A^T sigma(A x + b)`` (CPL), ``s`` an exported scalar or per-feature step.

    With ``N = ||x||``, ``h = A x + b``: ``||h|| <= ||A|| N + ||b||``, its error
    ``e_1 = gamma_{m+1} (|| |A| || N + ||b||)``; ``sigma`` (relu) passes it on unchanged;
    scaling adds ``u`` relative; the adjoint product ``e_2 = ||A|| e_1' + gamma_{m'} || |A| || ||h~||``;
    the subtraction ``delta = e_x + e_2 + u (||f(x)|| + e_2)`` with
    ``||f(x)|| <= L N + ||A|| max|s| ||b||`` (``f(0) = -A^T s sigma(b)``, ``|sigma(b)| <= |b|``).
    Each step is one :mod:`lipjax.ops.rounding` rule.
    """

    def rounding(arrays, config, input_shape, input_norm, u):
        shape = tuple(input_shape)
        op = operator(arrays, config, shape)
        step = float(np.abs(np.asarray(arrays["scale"], np.float64)).max())
        bias = bias_norm(arrays, op.pixels)
        x = fe.start(input_norm)
        hidden = fe.linear(x, op.norm, op.abs_norm, op.terms, u, bias)
        hidden = fe.activation(hidden, config["activation"], u)
        if scale_first:
            hidden = fe.scale(hidden, step, u)
        back = fe.linear(hidden, op.norm, op.abs_norm, op.adjoint_terms, u)
        if not scale_first:
            back = fe.scale(back, step, u)
        exact_norm = lipschitz(arrays, config, shape) * x.norm + op.norm * step * bias
        return fe.add(x, back, u, exact_norm)

    return rounding


# --- chains: several records applied in turn, one exported layer -----------------------------
#
# A Repeat of a Sequential (e.g. the convex potential flow block: a potential step then a
# skew step) exports as one "chain" layer, so its depth is still one scanned layer. Its
# arrays are namespaced "<step>/<name>"; its config lists the steps' kinds and configs.


def _steps(config: Config) -> list[Mapping[str, Any]]:
    steps = config.get("steps") if isinstance(config, Mapping) else None
    if not isinstance(steps, list) or not steps:
        raise ValueError("layer kind 'chain': config needs a non-empty list 'steps'")
    for step in steps:
        if not isinstance(step, Mapping) or set(step) != {"kind", "config"}:
            raise ValueError("layer kind 'chain': every step is {'kind': name, 'config': {...}}")
    return steps


def _split(arrays: Arrays, count: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{} for _ in range(count)]
    for key, value in arrays.items():
        index, _, name = key.partition("/")
        if not index.isdigit() or int(index) >= count or not name:
            raise ValueError(f"layer kind 'chain': array {key!r} names no step of {count}")
        parts[int(index)][name] = value
    return parts


def _chain_apply(x, arrays, config):
    steps = _steps(config)
    for step, part in zip(steps, _split(arrays, len(steps)), strict=True):
        x = lookup(step["kind"]).apply(x, part, step["config"])
    return x


def _chain_lipschitz(arrays, config, input_shape):
    steps = _steps(config)
    total, shape = 1.0, tuple(input_shape)
    for step, part in zip(steps, _split(arrays, len(steps)), strict=True):
        kind = lookup(step["kind"])
        total *= kind.lipschitz(part, step["config"], shape)
        shape = output_shape(kind, step["config"], part, shape)
    return total


def _chain_rounding(arrays, config, input_shape, input_norm, u):
    """Steps in turn: ``E <- L_step E + delta_step(N + E)``, ``N <- output_norm_step(N)``.

    A computed input ``x~`` within ``E`` of the exact ``x`` gives
    ``||fl(f(x~)) - f(x)|| <= ||fl(f(x~)) - f(x~)|| + ||f(x~) - f(x)|| <= delta(||x~||) + L E``.
    """
    steps = _steps(config)
    tracked, shape = fe.start(input_norm), tuple(input_shape)
    for step, part in zip(steps, _split(arrays, len(steps)), strict=True):
        kind = lookup(step["kind"])
        tracked = propagate(kind, part, step["config"], shape, tracked, u)
        shape = output_shape(kind, step["config"], part, shape)
    return tracked


def propagate(kind: ExportKind, arrays: Arrays, config: Config, shape, tracked: fe.Tracked, u: float):
    """One layer of ``kind`` applied to a computed value within ``tracked.error`` of the exact one.

    Raises:
      NoRoundingBound: the kind (or this config of it) has no rounding bound.
    """
    if kind.rounding is None:
        raise fe.NoRoundingBound(f"layer kind {kind.name!r} has no float rounding bound")
    step = kind.rounding(arrays, config, tuple(shape), tracked.computed_norm, u)
    lipschitz = kind.lipschitz(arrays, config, tuple(shape))
    return fe.Tracked(step.norm, lipschitz * tracked.error + step.error)


def _chain_validate(config, arrays):
    if set(config) != {"steps"}:
        raise ValueError(f"layer kind 'chain': config fields must be ['steps']; got {sorted(config)}")
    steps = _steps(config)
    for step, part in zip(steps, _split(arrays, len(steps)), strict=True):
        if not isinstance(step["config"], Mapping):
            raise ValueError("layer kind 'chain': a step's config must be a mapping")
        lookup(step["kind"]).check(step["config"], part)


CHAIN = register(
    ExportKind(
        "chain",
        apply=_chain_apply,
        lipschitz=_chain_lipschitz,
        validate=_chain_validate,
        rounding=_chain_rounding,
    )
)
"""Steps applied in turn; Lipschitz bound: the product of the steps' bounds."""


def output_shape(kind: ExportKind, config: Config, arrays: Arrays, input_shape: tuple[int, ...]):
    """Shape of one output of ``kind`` for one input of ``input_shape`` (no batch axis)."""
    out = jax.eval_shape(
        lambda x, a: kind.apply(x, a, config),
        jax.ShapeDtypeStruct((1, *input_shape), np.float32),
        {k: jax.ShapeDtypeStruct(np.shape(v), np.float32) for k, v in arrays.items()},
    )
    return tuple(out.shape[1:])


def chain_record(records: list[Record]) -> Record:
    """One record applying ``records`` in turn (a single record is returned unchanged)."""
    if len(records) == 1:
        return records[0]
    steps = [{"kind": r.kind.name, "config": r.config} for r in records]
    arrays = {f"{i}/{name}": v for i, r in enumerate(records) for name, v in r.arrays.items()}
    return CHAIN.record({"steps": steps}, **arrays)
