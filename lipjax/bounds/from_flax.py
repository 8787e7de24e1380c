"""Flax networks as explicit matrices: Dense parameter trees, and Dense/Conv ReLU chains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lipjax.bounds.common import Array, relu_forward, validate_weights


def dense_layers(params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The layers of a Flax MLP's ``params`` tree, in network order.

    The order is the numeric suffix of each name after its last ``_``
    (``Dense_0 < Dense_1 < ... < Dense_10``, ``layers_0 < layers_1 < ...``), then
    the name. Every reader of Dense parameters (weights, biases, ``lipjax bounds``)
    goes through this one function, so weights and biases always pair up.

    Args:
      params: ``variables["params"]`` (or ``variables``) with one sub-dict per layer.

    Returns:
      ``[(name, layer_params), ...]``.
    """
    if "params" in params and isinstance(params["params"], Mapping):
        params = params["params"]

    def order(name: str) -> tuple[int, str]:
        digits = "".join(ch for ch in name.rsplit("_", 1)[-1] if ch.isdigit())
        return (int(digits) if digits else -1, name)

    return [(name, params[name]) for name in sorted(params, key=order)]


def weights_from_dense_params(params: Mapping[str, Any]) -> list[Array]:
    """Weight list of a Flax MLP from its ``params`` tree of ``nn.Dense`` layers.

    Layers are taken in the order of :func:`dense_layers`. Flax stores kernels
    as ``in x out``; they are transposed to ``out x in``.

    Args:
      params: ``variables["params"]`` (or ``variables``) with one sub-dict per
        layer holding a 2-D ``kernel``.

    Returns:
      ``[W_0, ..., W_l]`` in float64.

    Raises:
      TypeError: a layer without a 2-D ``kernel`` (e.g. a conv: use
        :func:`weights_from_flax`).
    """
    out = []
    for name, layer in dense_layers(params):
        kernel = layer.get("kernel") if isinstance(layer, Mapping) else None
        if kernel is None or np.ndim(kernel) != 2:
            raise TypeError(
                f"layer {name!r} is not a Dense layer with a 2-D kernel; "
                "use weights_from_flax(module, variables, input_shape) for conv networks"
            )
        out.append(np.asarray(kernel, dtype=np.float64).T)
    return validate_weights(out)


def biases_from_dense_params(params: Mapping[str, Any]) -> list[Array] | None:
    """Bias vectors of a Flax MLP, in the order of :func:`weights_from_dense_params`.

    Args:
      params: as for :func:`weights_from_dense_params`.

    Returns:
      ``[b_0, ..., b_l]`` in float64, or None when a layer has no ``bias``.
    """
    layers = dense_layers(params)
    if not all(isinstance(layer, Mapping) and "bias" in layer for _, layer in layers):
        return None
    return [np.asarray(layer["bias"], dtype=np.float64).reshape(-1) for _, layer in layers]


def weights_from_flax(
    module: Any, variables: Mapping[str, Any], input_shape: Sequence[int]
) -> tuple[list[Array], list[Array]]:
    """Explicit matrices of a Flax network made of ``nn.Dense``/``nn.Conv`` and ReLU.

    The module is run once on a zero input of shape ``(1, *input_shape)`` while
    :func:`flax.linen.intercept_methods` records every ``Dense``/``Conv`` call.
    The matrix of each recorded layer is built by applying the layer itself
    (its real padding, strides and dilation) to the ``n_in`` identity basis
    vectors as one batch and subtracting the bias, so a conv becomes its
    ``n_out x n_in`` matrix on flattened (row-major ``H, W, C``) inputs.
    Finally the plain chain ``W_l R(... R(W_0 x + b_0)) + b_l`` is checked
    against the module on random inputs; anything else between the layers
    (pooling, normalization, residual connections, other activations) makes this
    check fail with a ``TypeError``.

    Size limit: each conv matrix holds ``n_in * n_out`` float64 numbers
    (8 bytes each), e.g. ``28*28*1 -> 14*14*8`` is 1.2 M entries (10 MB), a
    ``32*32*64 -> 32*32*64`` conv is 4.3e9 entries (34 GB): explicit matrices
    stop being feasible around ``n_in * n_out ~ 1e8``, and the bounds then also
    multiply such matrices.

    Args:
      module: a ``flax.linen`` Module.
      variables: its variables (``{"params": ...}``).
      input_shape: shape of one input without the batch axis, e.g. ``(28, 28, 1)``.

    Returns:
      ``(weights, biases)``: ``[W_0, ..., W_l]`` (out x in, float64) and the
      matching bias vectors.

    Raises:
      TypeError: a layer other than Dense/Conv holds parameters, or the network
        is not a Dense/Conv/ReLU chain.
    """
    import flax.linen as nn
    import jax.numpy as jnp

    weights: list[Array] = []
    biases: list[Array] = []
    records: list[tuple[Any, Any, tuple[int, ...]]] = []

    def interceptor(next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        mod = context.module
        if isinstance(mod, nn.Dense | nn.Conv):
            # A detached copy of the layer (same config, same parameters), applied later.
            layer = mod.clone(parent=None, name=None)
            records.append((layer, {"params": mod.variables["params"]}, np.shape(args[0])[1:]))
        elif mod.scope is not None and mod.scope.path and mod.variables.get("params"):
            # A leaf module with its own parameters that is neither Dense nor Conv.
            if not any(isinstance(v, Mapping) for v in mod.variables["params"].values()):
                raise TypeError(
                    f"unsupported layer {type(mod).__name__} at {'/'.join(mod.scope.path)}: "
                    "only nn.Dense and nn.Conv (with ReLU between them) are supported"
                )
        return next_fun(*args, **kwargs)

    x0 = jnp.zeros((1, *input_shape), jnp.float32)
    with nn.intercept_methods(interceptor):
        module.apply(variables, x0)
    if not records:
        raise TypeError("no nn.Dense or nn.Conv layer found in the module")
    for layer, layer_vars, feat_shape in records:
        n_in = int(np.prod(feat_shape))
        basis = jnp.eye(n_in, dtype=jnp.float32).reshape((n_in, *feat_shape))
        bias_out = layer.apply(layer_vars, jnp.zeros((1, *feat_shape), jnp.float32))
        cols = layer.apply(layer_vars, basis) - bias_out
        weights.append(np.asarray(cols, np.float64).reshape(n_in, -1).T)
        biases.append(np.asarray(bias_out, np.float64).reshape(-1))
    try:
        ws = validate_weights(weights)
    except ValueError as err:
        raise TypeError(
            "the module is not a plain chain of nn.Dense/nn.Conv layers with ReLU between "
            f"them (something reshapes or pools between two layers): {err}"
        ) from err

    # The recorded chain must be the network.
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(4, *input_shape)).astype(np.float32)
    expected = np.asarray(module.apply(variables, jnp.asarray(xs)), np.float64).reshape(4, -1)
    got = np.stack([relu_forward(ws, biases, x.reshape(-1))[0] for x in xs])
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        raise TypeError(
            "the module is not a plain chain of nn.Dense/nn.Conv layers with ReLU between "
            "them (pooling, normalization, skip connections and other activations are not "
            "supported): rebuilding it from its layers gives different outputs"
        )
    return ws, biases
