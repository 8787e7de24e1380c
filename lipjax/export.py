"""Trained variables -> exported parameters with certified per-layer constants.

An :class:`Exported` model is a list of layer records ``(kind, config, arrays)``
plus, for each, a guaranteed upper bound of its l2 Lipschitz constant computed
on the exported arrays by its kind's declaration (:class:`lipjax.layers.ExportKind`,
written next to the layer). It runs with a small interpreter over :mod:`lipjax.ops`
(each kind's ``apply``; no training code), and saves to a single ``.npz`` (arrays +
a JSON description) that is read back with ``allow_pickle=False``: loading never
executes code, a stored kind name is only looked up among the registered kinds. Loading recomputes every
constant from the arrays, so a certificate never rests on a stored number.

Example::

    exported = lipjax.export.export(model, variables, input_shape=(28, 28, 1))
    lipjax.export.save("model.npz", exported)
    exported = lipjax.export.load("model.npz")
    radii = exported.certify(x)  # float64 forward pass, rounding error subtracted
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import lipjax.layers  # noqa: F401 - registers every layer kind
from lipjax import certify
from lipjax.layers import kinds
from lipjax.layers.base import POWER_ITERATION, LipschitzLayer
from lipjax.layers.containers import Repeat, Sequential

FORMAT = "lipjax-export"
FORMAT_VERSION = 1
_META_KEY = "__lipjax__"


# Every exported kind is declared once, next to its layer, in lipjax.layers (see
# lipjax.layers.kinds); importing lipjax.layers registers them all in KINDS.
KINDS = kinds.KINDS


# --- exported model ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportedLayer:
    """One exported layer; ``depth`` > 1 means a stack whose arrays have a leading depth axis."""

    kind: str
    config: dict[str, Any]
    arrays: dict[str, np.ndarray]
    lipschitz: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    depth: int = 1


def _apply_layer(layer_kind: str, config, depth: int, x, arrays):
    apply = kinds.lookup(layer_kind).apply
    if depth == 1:
        return apply(x, arrays, config)

    def body(carry, sliced):
        return apply(carry, sliced, config), None

    x, _ = jax.lax.scan(body, x, arrays)
    return x


# The certified forward pass runs every float32 matmul and convolution at full float32 precision:
# on TPUs and recent GPUs the default precision uses bf16 / TF32 passes, whose error can exceed a
# certified margin. (On CPU the default already is full precision.)
CERTIFIED_PRECISION = "highest"


def _forward(structure, x, arrays):
    with jax.default_matmul_precision(CERTIFIED_PRECISION):
        for (kind, config, depth), layer_arrays in zip(structure, arrays, strict=True):
            x = _apply_layer(kind, config, depth, x, layer_arrays)
    return x


class Exported:
    """An exported network: plain arrays, an architecture, certified constants.

    Attributes:
      layers: the :class:`ExportedLayer` records, in order.
      input_shape: shape of one input (no batch axis).
    """

    def __init__(self, layers: Sequence[ExportedLayer], input_shape: Sequence[int]):
        self.layers = tuple(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        if not self.layers:
            raise ValueError("an exported model needs at least one layer")
        structure = tuple((l.kind, _freeze(l.config), l.depth) for l in self.layers)
        self._arrays = tuple({k: jnp.asarray(v) for k, v in l.arrays.items()} for l in self.layers)
        self._jitted = jax.jit(lambda x, arrays: _forward(_thaw_structure(structure), x, arrays))

    # Lipschitz constants ----------------------------------------------------------------
    @property
    def has_head(self) -> bool:
        """Whether the last layer is a normalised (LLN) head."""
        return self.layers[-1].kind == "normalized_head"

    @property
    def lipschitz(self) -> float:
        """Certified l2 Lipschitz constant of the whole network (product of layer bounds)."""
        return math.prod(l.lipschitz for l in self.layers)

    @property
    def body_lipschitz(self) -> float:
        """Certified constant of the network without its normalised head (= ``lipschitz`` without one)."""
        body = self.layers[:-1] if self.has_head else self.layers
        return math.prod(l.lipschitz for l in body)

    @property
    def head(self) -> np.ndarray | None:
        """Rows ``w_j`` (classes x features) of the normalised last layer, or None."""
        return np.asarray(self.layers[-1].arrays["kernel"]).T if self.has_head else None

    # running ------------------------------------------------------------------------------
    def apply(self, x, batch_size: int | None = None) -> jax.Array:
        """Logits of ``x`` (shape (N, *input_shape) or one input), jit-compiled.

        Args:
          x: floating-point inputs, finite.
          batch_size: evaluate in chunks of this many inputs to bound memory.
        """
        x = jnp.asarray(x)
        single = x.shape == self.input_shape
        if single:
            x = x[None]
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"expected inputs of shape (N, {', '.join(map(str, self.input_shape))}); got {x.shape}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"expected floating-point inputs; got dtype {x.dtype}")
        if not isinstance(x, jax.core.Tracer) and not np.isfinite(np.asarray(x)).all():
            raise ValueError("inputs contain NaN or inf")
        x = x.astype(jnp.float32)
        if batch_size is None or x.shape[0] <= batch_size:
            out = self._jitted(x, self._arrays)
        else:
            out = jnp.concatenate(
                [self._jitted(x[i : i + batch_size], self._arrays) for i in range(0, x.shape[0], batch_size)]
            )
        return out[0] if single else out

    __call__ = apply

    def rounding_bound(self, input_norm, dtype: str = "float32", input_error=0.0):
        """Bound of the logits' float rounding for inputs of l2 norms ``input_norm`` (per example).

        See :func:`lipjax.rounding.network_rounding`; raises
        :class:`lipjax.ops.rounding.NoRoundingBound` when a layer has no bound.
        """
        from lipjax import rounding

        return rounding.network_rounding(self.layers, self.has_head, input_norm, dtype, input_error)

    def certified_logits(self, x, batch_size: int | None = None, precision: str = "auto"):
        """Logits for certification and their :class:`lipjax.rounding.RoundingBound` (float64 where the
        backend has it): :func:`lipjax.rounding.certified_logits`."""
        from lipjax import rounding

        return rounding.certified_logits(self, x, batch_size=batch_size, precision=precision)

    def certified_radius(self, logits, labels=None, bound=None) -> jax.Array:
        """Certified radii from this model's logits, using the head formula when there is one.

        Args:
          logits: the model's logits.
          labels: optional true labels (radii of misclassified points are negative).
          bound: the :class:`lipjax.rounding.RoundingBound` of ``logits`` (from
            :meth:`certified_logits` or :meth:`rounding_bound`); its errors are taken off
            the margins. None trusts the logits as exact (use :meth:`certify` instead).
        """
        errors = {}
        if bound is not None:
            errors = {"logit_error": bound.logit_error, "feature_error": bound.feature_error}
        if self.has_head:
            return certify.certified_radius(
                logits, self.body_lipschitz, head=self.head, labels=labels, **errors
            )
        return certify.certified_radius(logits, self.lipschitz, labels=labels, **errors)

    def certify(self, x, labels=None, batch_size: int | None = 1000, precision: str = "auto") -> np.ndarray:
        """Certified radii of inputs ``x`` for the exact network, float rounding accounted for.

        The forward pass runs in float64 where the backend has it (``precision="auto"``),
        and the bound of its rounding error (:mod:`lipjax.rounding`) is taken off every
        margin. Returns float64 radii (negative or zero: not certified).
        """
        logits, bound = self.certified_logits(x, batch_size=batch_size, precision=precision)
        # float64 logits must stay float64 through the radius formula (no silent cast down).
        with jax.enable_x64(True) if logits.dtype == np.float64 else contextlib.nullcontext():
            return np.asarray(self.certified_radius(logits, labels=labels, bound=bound))

    def certified_accuracy(
        self, x, labels, eps, batch_size: int | None = 1000, precision: str = "auto"
    ) -> np.ndarray:
        """Certified accuracy of ``x`` with true ``labels`` at each ``eps`` (rounding accounted for)."""
        radii = self.certify(x, labels, batch_size=batch_size, precision=precision)
        eps_array = np.asarray(eps, np.float64)
        if np.any(eps_array < 0):
            raise ValueError(f"eps must be >= 0; got {eps}")
        return np.mean(radii[None, :] > np.atleast_1d(eps_array)[:, None], axis=-1).reshape(eps_array.shape)

    def evaluate(
        self, x, labels, eps, batch_size: int = 1000, pgd: bool = False, pgd_kwargs=None, precision="auto"
    ):
        """Clean, certified and (``pgd``) PGD accuracy in one report: :func:`lipjax.evaluate.evaluate`."""
        from lipjax.evaluate import evaluate

        return evaluate(
            self, x, labels, eps, batch_size=batch_size, pgd=pgd, pgd_kwargs=pgd_kwargs, precision=precision
        )

    def summary(self) -> str:
        """A table of layers, shapes and certified constants."""
        rows = [f"{'#':>3}  {'kind':<24}{'depth':>6}  {'output':<18}{'lipschitz':>12}"]
        for i, l in enumerate(self.layers):
            rows.append(f"{i:>3}  {l.kind:<24}{l.depth:>6}  {str(l.output_shape):<18}{l.lipschitz:>12.6f}")
        rows.append(f"network Lipschitz constant <= {self.lipschitz:.6f}")
        return "\n".join(rows)


def _freeze(obj):
    if isinstance(obj, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in obj.items()))
    if isinstance(obj, list | tuple):
        return ("__seq__", tuple(_freeze(v) for v in obj))
    return obj


def _thaw(obj):
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "__seq__":
        return [_thaw(v) for v in obj[1]]
    if isinstance(obj, tuple):
        return {k: _thaw(v) for k, v in obj}
    return obj


def _thaw_structure(structure):
    return tuple((kind, _thaw(config), depth) for kind, config, depth in structure)


# --- building an export from Flax variables --------------------------------------------


def _make_layer(kind, config, arrays, input_shape, depth=1) -> ExportedLayer:
    spec = kinds.lookup(kind)
    if not isinstance(config, dict):
        raise ValueError(f"layer {kind!r}: config must be a mapping; got {type(config).__name__}")
    spec.check(config, arrays)
    for name, value in arrays.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"layer {kind!r}: array {name!r} contains NaN or inf")
    slices = [arrays] if depth == 1 else [{k: v[i] for k, v in arrays.items()} for i in range(depth)]
    lipschitz = math.prod(spec.lipschitz(s, config, tuple(input_shape)) for s in slices)
    out = jax.eval_shape(
        lambda x, a: _apply_layer(kind, config, depth, x, a),
        jax.ShapeDtypeStruct((1, *input_shape), jnp.float32),
        {k: jax.ShapeDtypeStruct(v.shape, jnp.float32) for k, v in arrays.items()},
    )
    return ExportedLayer(
        kind, config, arrays, float(lipschitz), tuple(input_shape), tuple(out.shape[1:]), depth
    )


def _slice(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def _records(module: nn.Module, params, stats, input_shape, path: str) -> list[ExportedLayer]:
    """The exported layers of ``module``: one per layer of a top-level Sequential, one per Repeat."""
    if isinstance(module, Sequential):
        layers = []
        shape = tuple(input_shape)
        for i, layer in enumerate(module.layers):
            name = f"layers_{i}"
            sub = _records(layer, params.get(name, {}), stats.get(name, {}), shape, f"{path}/{name}")
            layers.extend(sub)
            if sub:
                shape = sub[-1].output_shape
        return layers
    if isinstance(module, Repeat):
        inner_params, inner_stats = params.get("layer", {}), stats.get("layer", {})
        records = [
            _record(module.layer, _slice(inner_params, i), _slice(inner_stats, i), input_shape, path)
            for i in range(module.depth)
        ]
        first = records[0]
        if module.depth == 1:
            return [_make_layer(first.kind.name, first.config, first.arrays, input_shape)]
        stacked = {k: np.stack([r.arrays[k] for r in records]) for k in first.arrays}
        return [_make_layer(first.kind.name, first.config, stacked, input_shape, depth=module.depth)]
    record = _record(module, params, stats, input_shape, path)
    return [_make_layer(record.kind.name, record.config, record.arrays, input_shape)]


def _record(module, params, stats, input_shape, path) -> kinds.Record:
    """One record for ``module``; a Sequential (or Repeat) nested in a Repeat becomes a chain."""
    input_shape = tuple(input_shape)
    if isinstance(module, Sequential | Repeat):
        if isinstance(module, Sequential):
            parts = [
                (layer, params.get(f"layers_{i}", {}), stats.get(f"layers_{i}", {}))
                for i, layer in enumerate(module.layers)
            ]
        else:
            p, s = params.get("layer", {}), stats.get("layer", {})
            parts = [(module.layer, _slice(p, i), _slice(s, i)) for i in range(module.depth)]
        records, shape = [], input_shape
        for j, (layer, p, s) in enumerate(parts):
            records.append(_record(layer, p, s, shape, f"{path}/{j}"))
            shape = kinds.output_shape(records[-1].kind, records[-1].config, records[-1].arrays, shape)
        if not records:
            raise ValueError(f"layer {path or '/'}: an empty container cannot be exported")
        return kinds.chain_record(records)
    if not isinstance(module, LipschitzLayer):
        raise TypeError(
            f"layer {path or '/'} ({type(module).__name__}) cannot be exported: only lipjax layers "
            "(with a certified Lipschitz constant) can; see lipjax.layers"
        )
    extra = {"statistics": stats} if module.uses_statistics else {}
    try:
        return module.export_record(params, input_shape, **extra)
    except KeyError as err:
        raise ValueError(f"layer {path} ({type(module).__name__}): variables lack {err}") from None


def export(model: nn.Module, variables: Mapping[str, Any], input_shape: Sequence[int]) -> Exported:
    """Exports a lipjax model's trained variables with certified per-layer constants.

    Normalised layers are re-normalised with guaranteed upper bounds of their
    operator norms (the convex potential step becomes ``h = 2 / bound^2``), so the
    exported network is provably as Lipschitz as :attr:`Exported.lipschitz` says;
    it may differ from the training-time function by the gap between the power
    iteration estimate and the bound (tiny after training).

    Args:
      model: a :class:`lipjax.layers.Sequential` (what :mod:`lipjax.models` builds)
        or a single lipjax layer.
      variables: the variables from ``model.init`` / training (``params`` and
        ``power_iteration``).
      input_shape: shape of one input, without the batch axis, e.g. (32, 32, 3).

    Returns:
      The :class:`Exported` model.
    """
    if not isinstance(variables, Mapping) or (
        not {"params", POWER_ITERATION} & set(variables) and any(True for _ in jax.tree.leaves(variables))
    ):
        raise ValueError("variables must be the mapping returned by model.init (with a 'params' entry)")
    input_shape = tuple(int(s) for s in input_shape)
    params = dict(variables.get("params", {}))
    stats = dict(variables.get(POWER_ITERATION, {}))
    if not isinstance(model, Sequential):
        model = Sequential([model])
        params, stats = {"layers_0": params}, {"layers_0": stats}
    return Exported(_records(model, params, stats, input_shape, ""), input_shape)


# --- saving and loading -------------------------------------------------------------------


def save(path: str | os.PathLike, exported: Exported, overwrite: bool = False) -> None:
    """Writes ``exported`` to ``path`` (a ``.npz``: arrays plus a JSON description).

    The file is written to a temporary name and renamed, so a crash never leaves a
    half-written export; an existing file is only replaced with ``overwrite=True``.

    Raises:
      FileExistsError: when ``path`` exists and ``overwrite`` is False.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "input_shape": list(exported.input_shape),
        "lipschitz": exported.lipschitz,
        "layers": [
            {
                "kind": l.kind,
                "config": l.config,
                "depth": l.depth,
                "lipschitz": l.lipschitz,
                "arrays": sorted(l.arrays),
            }
            for l in exported.layers
        ],
    }
    payload = {
        f"{i}/{name}": value for i, l in enumerate(exported.layers) for name, value in l.arrays.items()
    }
    payload[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lipjax-export-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str | os.PathLike) -> Exported:
    """Reads an export written by :func:`save`, never executing code from it.

    Every layer's Lipschitz constant is recomputed from the stored arrays. A
    stored constant smaller than the recomputed one means the file was altered
    or corrupted, and is refused.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is not a valid lipjax export (the message says why).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no export file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a valid lipjax export (unreadable npz: {err})") from None
    if _META_KEY not in contents:
        raise ValueError(f"{path} is not a lipjax export: no '{_META_KEY}' description")
    try:
        meta = json.loads(contents.pop(_META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: corrupt description ({err})") from None
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format {meta.get('format')!r} version {meta.get('version')!r}")
    shape = tuple(meta["input_shape"])
    layers = []
    for i, spec in enumerate(meta["layers"]):
        arrays = {}
        for name in spec["arrays"]:
            key = f"{i}/{name}"
            if key not in contents:
                raise ValueError(f"{path}: layer {i} ({spec['kind']}) lacks array {name!r}")
            arrays[name] = np.asarray(contents[key], np.float32)
        try:
            layer = _make_layer(spec["kind"], spec["config"], arrays, shape, spec["depth"])
        except (TypeError, KeyError) as err:
            raise ValueError(f"{path}: layer {i} ({spec['kind']}) is inconsistent: {err}") from None
        if spec["lipschitz"] < layer.lipschitz * (1 - 1e-9):
            raise ValueError(
                f"{path}: layer {i} ({spec['kind']}) claims Lipschitz constant {spec['lipschitz']} "
                f"but its arrays give {layer.lipschitz}; the file was altered or corrupted"
            )
        layers.append(layer)
        shape = layer.output_shape
    return Exported(layers, meta["input_shape"])
