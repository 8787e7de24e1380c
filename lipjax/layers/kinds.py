"""Exported layer kinds: one typed declaration per kind, registered where it is written.

An exported layer is a record ``(kind, config, arrays)``. Its :class:`ExportKind`
says, in one place, everything the exported-model interpreter
(:mod:`lipjax.export`) and the loader need: the kind's name in the file, the
forward pass built from :mod:`lipjax.ops`, a guaranteed upper bound of its l2
Lipschitz constant computed *on the exported arrays*, and the names of its
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
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from lipjax import ops
from lipjax.ops.spectral_bounds import with_rounding_slack

Arrays = Mapping[str, Any]
Config = Mapping[str, Any]
ApplyFn = Callable[[jax.Array, Arrays, Config], jax.Array]
"""``apply(x, arrays, config) -> y`` on a batch ``x``."""
BoundFn = Callable[[Mapping[str, np.ndarray], Config, tuple[int, ...]], float]
"""``lipschitz(arrays, config, input_shape) -> float``, a guaranteed upper bound."""


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
    """

    name: str
    apply: ApplyFn
    lipschitz: BoundFn
    arrays: tuple[str, ...] = ()
    optional_arrays: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    validate: Callable[[Config, Arrays], None] | None = None

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


def _chain_validate(config, arrays):
    if set(config) != {"steps"}:
        raise ValueError(f"layer kind 'chain': config fields must be ['steps']; got {sorted(config)}")
    steps = _steps(config)
    for step, part in zip(steps, _split(arrays, len(steps)), strict=True):
        if not isinstance(step["config"], Mapping):
            raise ValueError("layer kind 'chain': a step's config must be a mapping")
        lookup(step["kind"]).check(step["config"], part)


CHAIN = register(
    ExportKind("chain", apply=_chain_apply, lipschitz=_chain_lipschitz, validate=_chain_validate)
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
