"""Architectures: Table 1 of Meunier et al. (2022), depth-independent compilation."""

import jax
import jax.numpy as jnp
import pytest

from lipjax import layers as L
from lipjax import models


def _structure(model):
    """(conv CPL count, channels, dense CPL count, features) read off a built model."""
    conv = dense = None
    for layer in model.layers:
        if isinstance(layer, L.Repeat) and isinstance(layer.layer, L.ConvexPotentialConv):
            conv = (layer.depth, layer.layer.features)
        if isinstance(layer, L.Repeat) and isinstance(layer.layer, L.ConvexPotentialDense):
            dense = (layer.depth, layer.layer.features)
    return (*conv, *dense)


@pytest.mark.parametrize(
    "size,expected",
    [
        ("S", (20, 45, 7, 2048)),
        ("M", (30, 60, 10, 2048)),
        ("L", (90, 60, 15, 4096)),
        ("XL", (120, 70, 15, 4096)),
    ],
)
def test_cpl_sizes_follow_table_1(size, expected):
    model = models.cpl(size)
    assert _structure(model) == expected
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Normalize",
        "ChannelPad",
        "Repeat",
        "ScaledAvgPool",
        "Flatten",
        "Repeat",
        "NormalizedDense",
    ]
    assert model.layers[1].channels == expected[1] and model.layers[3].window == 4


def test_cpl_s_shapes_and_parameter_count():
    model = models.cpl("S", num_classes=100, head="truncate")
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    conv = variables["params"]["layers_2"]["layer"]["kernel"]
    dense = variables["params"]["layers_5"]["layer"]["kernel"]
    assert conv.shape == (20, 3, 3, 45, 45)
    assert dense.shape == (7, 45 * 8 * 8, 2048)
    out = jax.eval_shape(model.apply, variables, jnp.zeros((2, 32, 32, 3)))
    assert out.shape == (2, 100)


def test_thousand_layer_cpl_compiles_on_cpu():
    """Appendix D.1: 1000 conv CPL layers; nn.scan keeps the graph one layer deep."""
    model = models.deep_cpl(depth=1000, channels=30)
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    (stack,) = variables["params"].values()  # the only layer with parameters
    assert stack["layer"]["kernel"].shape == (1000, 3, 3, 30, 30)

    def loss(params, state):
        out, updates = model.apply(
            {"params": params, **state}, x, update_stats=True, mutable=[L.POWER_ITERATION]
        )
        return out.sum(), updates

    state = {k: v for k, v in variables.items() if k != "params"}
    compiled = jax.jit(jax.grad(loss, has_aux=True)).lower(variables["params"], state).compile()
    hlo = compiled.as_text()
    assert hlo.count("convolution(") < 40  # one layer's convolutions, not a thousand


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="size"):
        models.cpl("XXL")
    with pytest.raises(ValueError, match="head"):
        models.cpl("S", head="softmax")
    with pytest.raises(ValueError, match="both mean and std"):
        models.cpl_mnist_dense(mean=(0.1,))
