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
    """

    name: str
    apply: ApplyFn
    lipschitz: BoundFn
    arrays: tuple[str, ...] = ()
    optional_arrays: tuple[str, ...] = ()
    config: tuple[str, ...] = ()

    def check(self, config: Config, arrays: Arrays) -> None:
        """Raises ``ValueError`` naming any missing or unknown array or config field."""
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
