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


@pytest.mark.parametrize("layer", sorted(models.LIPCONVNET_LAYERS))
def test_lipconvnet_same_shape_for_every_layer_type(layer):
    model = models.lipconvnet(layer, "XS")
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    out = jax.eval_shape(model.apply, variables, jnp.zeros((2, 32, 32, 3)))
    assert out.shape == (2, 10)
    repeats = [m for m in model.layers if isinstance(m, L.Repeat)]
    assert [r.depth for r in repeats] == [5] * 5
    inner = [r.layer.layers[0] for r in repeats]
    assert len({type(m) for m in inner}) == 1  # one layer type throughout
    # block i works on 16 * 2^i channels; XS ends with 512 features and a truncation head
    assert [m.features for m in inner] == [16, 32, 64, 128, 256]
    assert model.layers[-3].features == 512
    assert isinstance(model.layers[-1], L.ChannelTruncate) and model.layers[-1].channels == 10


@pytest.mark.parametrize("size,final", [("XS", 512), ("S", 1024), ("M", 2048), ("L", 4096)])
def test_lipconvnet_sizes(size, final):
    model = models.lipconvnet("aol", size, head="lln")
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    head = variables["params"][f"layers_{len(model.layers) - 1}"]["kernel"]
    assert head.shape == (final, 10)


# SLL's export at 512 channels takes 45 s; its layers' bounds are checked in test_layers.
@pytest.mark.parametrize("layer", ["cayley"])
def test_small_lipconvnet_exports_with_a_certificate(layer):
    from conftest import jacobian_singular_values

    from lipjax import export

    model = models.lipconvnet(layer, "XS", input_resolution=4, layers_per_block=1, mean=None, std=None)
    x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 3))
    variables = model.init(jax.random.key(1), x)
    exported = export.export(model, variables, (4, 4, 3))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], x)
    assert singular.max() <= exported.lipschitz <= 1.0 + 1e-3


def test_lipconvnet_bad_arguments():
    with pytest.raises(ValueError, match="layer must be one of"):
        models.lipconvnet("lot")
    with pytest.raises(ValueError, match="size"):
        models.lipconvnet("cpl", "XL")
    with pytest.raises(ValueError, match="input_resolution"):
        models.lipconvnet("cpl", input_resolution=24)
    with pytest.raises(ValueError, match="layers_per_block"):
        models.lipconvnet("cpl", layers_per_block=0)


def test_cpl_network_with_spectral_convolutions_is_a_certified_same_shape_baseline():
    from conftest import jacobian_singular_values

    from lipjax import export

    kwargs = dict(conv_layers=2, channels=4, linear_layers=1, features=8, pool=2)
    cpl, spectral = (models.cpl_network(**kwargs, conv_layer=kind) for kind in ("cpl", "spectral"))
    x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 3))
    variables = spectral.init(jax.random.key(1), x)
    assert spectral.apply(variables, x).shape == cpl.apply(cpl.init(jax.random.key(1), x), x).shape
    exported = export.export(spectral, variables, (4, 4, 3))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], x)
    # untrained: one power-iteration step underestimates the norm, and the certificate says so (> 1)
    assert singular.max() <= exported.lipschitz
    with pytest.raises(ValueError, match="conv_layer must be"):
        models.cpl_network(**kwargs, conv_layer="aol")
