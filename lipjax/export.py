"""Trained variables -> exported parameters with certified per-layer constants.

An :class:`Exported` model is a list of layer records ``(kind, config, arrays)``
plus, for each, a guaranteed upper bound of its l2 Lipschitz constant computed
on the exported arrays by :mod:`lipjax.ops.spectral_bounds`. It runs with a
small interpreter over :mod:`lipjax.ops` (no training code, no Flax), and saves
to a single ``.npz`` (arrays + a JSON description) that is read back with
``allow_pickle=False``: loading never executes code. Loading recomputes every
constant from the arrays, so a certificate never rests on a stored number.

Example::

    exported = lipjax.export.export(model, variables, input_shape=(28, 28, 1))
    lipjax.export.save("model.npz", exported)
    exported = lipjax.export.load("model.npz")
    radii = exported.certified_radius(exported.apply(x))
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lipjax import certify, ops
from lipjax.layers.base import POWER_ITERATION
from lipjax.layers.containers import Repeat, Sequential
from lipjax.ops.convex_potential import convex_potential_lipschitz
from lipjax.ops.spectral_bounds import with_rounding_slack

FORMAT = "lipjax-export"
FORMAT_VERSION = 1
_META_KEY = "__lipjax__"


# --- the interpreter: kind -> (apply, Lipschitz bound) --------------------------------


def _padding(config):
    padding = config["padding"]
    return padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)


def _apply_dense(x, a, c):
    y = x @ a["kernel"]
    return y + a["bias"] if "bias" in a else y


def _apply_conv(x, a, c):
    y = ops.conv(x, a["kernel"], c["strides"], _padding(c))
    return y + a["bias"] if "bias" in a else y


def _dense_bound(a, c, shape):
    return ops.dense_spectral_norm_bound(a["kernel"])


def _conv_bound(a, c, shape):
    return ops.conv_spectral_norm_bound(a["kernel"], shape[:2], c["strides"], _padding(c))


def _cpl_bound(norm_bound):
    def bound(a, c, shape):
        return with_rounding_slack(convex_potential_lipschitz(a["scale"], norm_bound(a, c, shape)))

    return bound


def _one(a, c, shape):
    return 1.0


def _one_with_rounding(a, c, shape):
    return with_rounding_slack(1.0)


def _normalize_bound(a, c, shape):
    std = np.asarray(a["std"], np.float64)
    if np.any(std <= 0) or not np.all(np.isfinite(std)):
        raise ValueError("normalize layer has a non-positive or non-finite std")
    return with_rounding_slack(1.0 / float(std.min()))


@dataclasses.dataclass(frozen=True)
class _Kind:
    apply: Callable[[jax.Array, Mapping[str, jax.Array], Mapping[str, Any]], jax.Array]
    lipschitz: Callable[[Mapping[str, np.ndarray], Mapping[str, Any], tuple[int, ...]], float]
    arrays: tuple[str, ...] = ()


KINDS: dict[str, _Kind] = {
    "dense": _Kind(_apply_dense, _dense_bound, ("kernel",)),
    "normalized_head": _Kind(_apply_dense, _dense_bound, ("kernel",)),
    "conv": _Kind(_apply_conv, _conv_bound, ("kernel",)),
    "convex_potential_dense": _Kind(
        lambda x, a, c: ops.convex_potential_dense(x, a["kernel"], a["bias"], a["scale"], c["activation"]),
        _cpl_bound(_dense_bound),
        ("kernel", "bias", "scale"),
    ),
    "convex_potential_conv": _Kind(
        lambda x, a, c: ops.convex_potential_conv(
            x, a["kernel"], a["bias"], a["scale"], c["strides"], _padding(c), c["activation"]
        ),
        _cpl_bound(_conv_bound),
        ("kernel", "bias", "scale"),
    ),
    "normalize": _Kind(lambda x, a, c: (x - a["mean"]) / a["std"], _normalize_bound, ("mean", "std")),
    "channel_pad": _Kind(lambda x, a, c: ops.channel_pad(x, c["channels"]), _one),
    "channel_truncate": _Kind(lambda x, a, c: ops.channel_truncate(x, c["channels"]), _one),
    "flatten": _Kind(lambda x, a, c: ops.flatten(x), _one),
    "pixel_unshuffle": _Kind(lambda x, a, c: ops.pixel_unshuffle(x, c["factor"]), _one),
    "scaled_avg_pool": _Kind(lambda x, a, c: ops.scaled_avg_pool(x, c["window"]), _one_with_rounding),
    "scaled_l2_norm_pool": _Kind(lambda x, a, c: ops.scaled_l2_norm_pool(x, c["window"]), _one_with_rounding),
    "group_sort": _Kind(lambda x, a, c: ops.group_sort(x, c["group_size"]), _one),
    "full_sort": _Kind(lambda x, a, c: ops.full_sort(x), _one),
    "householder": _Kind(lambda x, a, c: ops.householder(x, a["theta"]), _one_with_rounding, ("theta",)),
    "activation": _Kind(lambda x, a, c: ops.get_activation(c["name"])(x), _one),
}


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
    apply = KINDS[layer_kind].apply
    if depth == 1:
        return apply(x, arrays, config)

    def body(carry, sliced):
        return apply(carry, sliced, config), None

    x, _ = jax.lax.scan(body, x, arrays)
    return x


def _forward(structure, x, arrays):
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

    @property
    def num_outputs(self) -> int:
        return int(np.prod(self.layers[-1].output_shape))

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

    def certified_radius(self, logits, labels=None) -> jax.Array:
        """Certified radii from this model's logits, using the head formula when there is one."""
        if self.has_head:
            return certify.certified_radius(logits, self.body_lipschitz, head=self.head, labels=labels)
        return certify.certified_radius(logits, self.lipschitz, labels=labels)

    def certified_accuracy(self, x, labels, eps, batch_size: int | None = 1000) -> np.ndarray:
        """Certified accuracy of inputs ``x`` with true ``labels`` at each ``eps``."""
        logits = self.apply(x, batch_size=batch_size)
        if self.has_head:
            return certify.certified_accuracy(logits, labels, eps, self.body_lipschitz, head=self.head)
        return certify.certified_accuracy(logits, labels, eps, self.lipschitz)

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
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r}; known: {sorted(KINDS)}")
    spec = KINDS[kind]
    missing = [name for name in spec.arrays if name not in arrays]
    if missing:
        raise ValueError(f"layer {kind!r} is missing arrays {missing}")
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


def _records(module: nn.Module, params, state, input_shape, path: str):
    if isinstance(module, Sequential):
        layers = []
        shape = tuple(input_shape)
        for i, layer in enumerate(module.layers):
            name = f"layers_{i}"
            sub = _records(layer, params.get(name, {}), state.get(name, {}), shape, f"{path}/{name}")
            layers.extend(sub)
            if sub:
                shape = sub[-1].output_shape
        return layers
    if isinstance(module, Repeat):
        inner_params, inner_state = params.get("layer", {}), state.get("layer", {})
        records = [
            _record(
                module.layer,
                jax.tree.map(lambda a, i=i: a[i], inner_params),
                jax.tree.map(lambda a, i=i: a[i], inner_state),
                input_shape,
                path,
            )
            for i in range(module.depth)
        ]
        kind, config, arrays = records[0]
        if module.depth == 1:
            return [_make_layer(kind, config, arrays, input_shape)]
        stacked = {k: np.stack([r[2][k] for r in records]) for k in arrays}
        return [_make_layer(kind, config, stacked, input_shape, depth=module.depth)]
    kind, config, arrays = _record(module, params, state, input_shape, path)
    return [_make_layer(kind, config, arrays, input_shape)]


def _record(module, params, state, input_shape, path):
    if not hasattr(module, "export_record"):
        raise TypeError(
            f"layer {path or '/'} ({type(module).__name__}) cannot be exported: only lipjax layers "
            "(with a certified Lipschitz constant) can; see lipjax.layers"
        )
    try:
        kind, config, arrays = module.export_record(params, state, tuple(input_shape))
    except KeyError as err:
        raise ValueError(f"layer {path} ({type(module).__name__}): variables lack {err}") from None
    return kind, config, {k: np.asarray(v, np.float32) for k, v in arrays.items()}


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
    if (
        not isinstance(variables, Mapping)
        or "params" not in variables
        and any(True for _ in jax.tree.leaves(variables))
    ):
        raise ValueError("variables must be the mapping returned by model.init (with a 'params' entry)")
    input_shape = tuple(int(s) for s in input_shape)
    params = dict(variables.get("params", {}))
    state = dict(variables.get(POWER_ITERATION, {}))
    if not isinstance(model, Sequential):
        model = Sequential([model])
        params, state = {"layers_0": params}, {"layers_0": state}
    try:
        layers = _records(model, params, state, input_shape, "")
    except (TypeError, ValueError):
        raise
    return Exported(layers, input_shape)


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
