"""Every layer's exported Lipschitz constant against its exact Jacobian, and layer semantics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jacobian_singular_values, train_a_few_steps

from lipjax import export, ops
from lipjax import layers as L

IMAGE = (6, 6, 4)
VECTOR = (12,)

# (name, module, input shape, norm-preserving Jacobian?)
LAYERS = [
    ("cpl_dense", L.ConvexPotentialDense(16), VECTOR, False),
    ("cpl_dense_softplus", L.ConvexPotentialDense(8, activation="softplus"), VECTOR, False),
    ("cpl_conv", L.ConvexPotentialConv(6), IMAGE, False),
    ("cpl_conv_stride2_valid", L.ConvexPotentialConv(5, strides=(2, 2), padding="VALID"), IMAGE, False),
    ("cpl_conv_circular", L.ConvexPotentialConv(4, padding="CIRCULAR"), IMAGE, False),
    ("cpl_conv_fixed_step", L.ConvexPotentialConv(4, step=0.5), IMAGE, False),
    ("sll_dense", L.SLLDense(16), VECTOR, False),
    ("sll_conv_stride2", L.SLLConv(5, strides=(2, 2)), IMAGE, False),
    ("aol_dense", L.AOLDense(7), VECTOR, False),
    ("aol_conv_stride2", L.AOLConv(5, strides=(2, 2)), IMAGE, False),
    ("cayley_dense", L.CayleyDense(12), VECTOR, True),
    ("cayley_dense_narrower", L.CayleyDense(5), VECTOR, False),
    ("cayley_conv", L.CayleyConv(), IMAGE, True),
    ("cayley_conv_wider", L.CayleyConv(6), IMAGE, True),
    ("soc_dense", L.SOCDense(12), VECTOR, True),
    ("soc_conv", L.SOCConv(), IMAGE, True),
    ("soc_conv_circular_5x5", L.SOCConv(kernel_size=(5, 5), padding="CIRCULAR", terms=6), IMAGE, True),
    ("flow_dense_cayley", L.ConvexPotentialFlow(10, depth=2, conv=False), VECTOR, False),
    ("flow_conv_exp", L.ConvexPotentialFlow(5, depth=2, skew="exp", padding="SAME", terms=8), IMAGE, False),
    ("flow_conv_cayley", L.ConvexPotentialFlow(6), IMAGE, False),
    ("layer_centering", L.LayerCentering(), VECTOR, False),
    ("layer_centering_image", L.LayerCentering(), IMAGE, False),
    ("batch_centering", L.BatchCentering(momentum=0.5), IMAGE, True),
    ("spectral_dense", L.SpectralDense(8, bjorck_iters=0), VECTOR, False),
    ("spectral_dense_bjorck", L.SpectralDense(12, bjorck_iters=25), VECTOR, True),
    ("spectral_conv", L.SpectralConv(5), IMAGE, False),
    ("spectral_conv_bjorck_stride2", L.SpectralConv(6, strides=(2, 2), bjorck_iters=20), IMAGE, False),
    ("frobenius_dense", L.FrobeniusDense(5), VECTOR, False),
    ("constrained_dense_frobenius", L.ConstrainedDense(6, constraint=ops.FROBENIUS), VECTOR, False),
    ("constrained_conv_spectral", L.ConstrainedConv(3, padding="CIRCULAR"), IMAGE, False),
    ("lln", L.NormalizedDense(5), VECTOR, False),
    ("group_sort2", L.MaxMin(), VECTOR, True),
    ("group_sort4", L.GroupSort(4), IMAGE, True),
    ("full_sort", L.FullSort(), VECTOR, True),
    ("householder", L.Householder(), VECTOR, True),
    ("channel_pad", L.ChannelPad(7), IMAGE, True),
    ("channel_truncate", L.ChannelTruncate(3), VECTOR, False),
    ("flatten", L.Flatten(), IMAGE, True),
    ("avg_pool", L.ScaledAvgPool(2), IMAGE, False),
    ("l2_pool", L.ScaledL2NormPool(3), IMAGE, False),
    ("unshuffle", L.InvertibleDownsample(2), IMAGE, True),
    ("normalize", L.Normalize((0.1, 0.2, 0.3, 0.4), (0.5, 0.25, 2.0, 1.0)), IMAGE, False),
    ("relu", L.Activation("relu"), VECTOR, False),
]

SMALL_NETWORKS = [
    (
        "cpl_conv_net",
        L.Sequential(
            [
                L.Normalize((0.5, 0.5), (0.3, 0.6)),
                L.ChannelPad(4),
                L.Repeat(L.ConvexPotentialConv(4), 3),
                L.ScaledAvgPool(2),
                L.Flatten(),
                L.Repeat(L.ConvexPotentialDense(10), 2),
                L.NormalizedDense(3),
            ]
        ),
        (4, 4, 2),
    ),
    (
        "deel_lip_net",
        L.Sequential(
            [
                L.SpectralConv(4, bjorck_iters=5),
                L.GroupSort2(),
                L.ScaledL2NormPool(2),
                L.Flatten(),
                L.SpectralDense(8),
                L.FullSort(),
                L.FrobeniusDense(1),
            ]
        ),
        (4, 4, 2),
    ),
]


def _trained(module, shape, steps=4):
    x = jax.random.uniform(jax.random.key(0), (8, *shape))
    variables = module.init(jax.random.key(1), x)
    variables = train_a_few_steps(module, variables, x, steps=steps)
    return variables, x


@functools.cache
def _exported_row(name):
    """The export of LAYERS' row ``name`` after a few training steps (computed once per session)."""
    _, module, shape, _ = next(row for row in LAYERS if row[0] == name)
    variables, _ = _trained(module, shape)
    return export.export(module, variables, shape)


@pytest.mark.parametrize("name,module,shape,orthogonal", LAYERS, ids=[p[0] for p in LAYERS])
def test_exported_constant_bounds_exact_jacobian(name, module, shape, orthogonal):
    exported = _exported_row(name)
    points = jax.random.normal(jax.random.key(2), (16, *shape))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], points)
    assert singular.max() <= exported.lipschitz, (singular.max(), exported.lipschitz)
    if orthogonal:
        np.testing.assert_allclose(singular, 1.0, atol=2e-3)


def test_every_registered_kind_is_in_the_jacobian_table():
    """A new exported kind needs a row in LAYERS, so its bound is checked against its Jacobian."""
    covered = {layer.kind for name, *_ in LAYERS for layer in _exported_row(name).layers}
    assert set(L.KINDS) - covered == set(), f"kinds without a row in LAYERS: {set(L.KINDS) - covered}"


def test_records_are_checked_against_their_declaration():
    dense = L.KINDS["dense"]
    with pytest.raises(ValueError, match="unknown arrays \\['kernal'\\]"):
        dense.record(kernal=np.ones((2, 2)))
    with pytest.raises(ValueError, match="missing config fields \\['padding'\\]"):
        L.KINDS["conv"].record({"strides": [1, 1]}, kernel=np.ones((3, 3, 1, 1)))
    with pytest.raises(ValueError, match="declared twice"):
        L.register(L.ExportKind("dense", dense.apply, dense.lipschitz))
    assert L.register(dense) is dense  # registering the same declaration again is harmless


def test_every_lipjax_layer_is_a_lipschitz_layer():
    for _, module, _, _ in LAYERS:
        assert isinstance(module, L.LipschitzLayer | L.Repeat), type(module).__name__


@pytest.mark.parametrize("name,module,shape", SMALL_NETWORKS, ids=[p[0] for p in SMALL_NETWORKS])
def test_small_networks_exported_constant_bounds_jacobian(name, module, shape):
    variables, x = _trained(module, shape, steps=5)
    exported = export.export(module, variables, shape)
    points = jax.random.uniform(jax.random.key(3), (32, *shape))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], points)
    assert singular.max() <= exported.lipschitz
    if exported.has_head:
        body = export.Exported(exported.layers[:-1], shape)
        body_singular = jacobian_singular_values(lambda v: body.apply(v[None])[0], points)
        assert body_singular.max() <= exported.body_lipschitz


def test_cpl_is_one_lipschitz_even_when_training_estimate_is_low():
    """Export replaces the power-iteration estimate (a lower bound) by a certified bound."""
    module = L.ConvexPotentialDense(16, power_iters=0)  # the estimate stays at its random start
    x = jax.random.normal(jax.random.key(0), (4, 12))
    variables = module.init(jax.random.key(1), x)
    exported = export.export(module, variables, (12,))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], x * 3)
    assert exported.lipschitz == pytest.approx(1.0, abs=1e-4)
    assert singular.max() <= exported.lipschitz


def test_relaxed_cpl_certifies_its_real_constant_above_one():
    """A fixed step h with h ||W||^2 > 2 is not 1-Lipschitz (appendix D.2); export says so."""
    module = L.ConvexPotentialDense(6, step=1.0)
    x = jax.random.uniform(jax.random.key(0), (4, 6), minval=1.0, maxval=2.0)
    variables = module.init(jax.random.key(1), x)
    variables["params"]["kernel"] = 3.0 * jnp.eye(6)  # h ||W||^2 = 9: the Jacobian at x > 0 is -8 I
    exported = export.export(module, variables, (6,))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], x)
    assert "power_iteration" not in variables
    assert exported.lipschitz == pytest.approx(8.0, rel=1e-4)
    assert singular.max() == pytest.approx(8.0, rel=1e-5)
    assert singular.max() <= exported.lipschitz


def test_export_matches_flax_eval_once_power_iteration_converged():
    module, shape = SMALL_NETWORKS[0][1], SMALL_NETWORKS[0][2]
    variables, x = _trained(module, shape, steps=3)
    converge = jax.jit(lambda v: module.apply(v, x, update_stats=True, mutable=[L.POWER_ITERATION])[1])
    for _ in range(300):
        variables = {**variables, **converge(variables)}
    np.testing.assert_allclose(
        export.export(module, variables, shape).apply(x), module.apply(variables, x), atol=1e-4
    )


# --- power-iteration collection semantics -------------------------------------------------


def _cpl_variables():
    module = L.Sequential([L.ConvexPotentialConv(4), L.Flatten(), L.ConvexPotentialDense(8)])
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    return module, module.init(jax.random.key(1), x), x


def test_collection_is_separate_from_params():
    _, variables, _ = _cpl_variables()
    assert set(variables) == {"params", L.POWER_ITERATION}
    assert all("u" not in path for path in jax.tree_util.tree_flatten_with_path(variables["params"])[0])
    assert variables[L.POWER_ITERATION]["layers_0"]["u"].shape == (5, 5, 3)  # real input size


def test_update_only_when_asked():
    module, variables, x = _cpl_variables()
    _, unchanged = module.apply(variables, x, update_stats=False, mutable=[L.POWER_ITERATION])
    jax.tree.map(np.testing.assert_array_equal, unchanged[L.POWER_ITERATION], variables[L.POWER_ITERATION])
    _, updated = module.apply(variables, x, update_stats=True, mutable=[L.POWER_ITERATION])
    before = variables[L.POWER_ITERATION]["layers_0"]["u"]
    assert not np.allclose(updated[L.POWER_ITERATION]["layers_0"]["u"], before)


def test_training_without_mutable_collection_fails_clearly():
    module, variables, x = _cpl_variables()
    with pytest.raises(Exception, match="power_iteration"):
        module.apply(variables, x, update_stats=True)


def test_eval_is_deterministic():
    module, variables, x = _cpl_variables()
    np.testing.assert_array_equal(module.apply(variables, x), module.apply(variables, x))


def test_gradients_do_not_flow_through_the_vector():
    module = L.ConvexPotentialDense(4)
    x = jax.random.normal(jax.random.key(0), (3, 6))
    variables = module.init(jax.random.key(1), x)

    def loss(u):
        state = {L.POWER_ITERATION: {"u": u}}
        out, _ = module.apply(
            {"params": variables["params"], **state}, x, update_stats=True, mutable=[L.POWER_ITERATION]
        )
        return out.sum()

    grad = jax.grad(loss)(variables[L.POWER_ITERATION]["u"])
    np.testing.assert_array_equal(grad, 0.0)


def test_missing_collection_is_a_clear_error():
    module, variables, x = _cpl_variables()
    with pytest.raises(ValueError, match="lack the 'power_iteration' collection"):
        module.apply({"params": variables["params"]}, x)


# --- bad input -------------------------------------------------------------------------------


def test_wrong_rank_dtype_and_non_finite_inputs():
    conv = L.ConvexPotentialConv(4)
    with pytest.raises(ValueError, match="rank 4"):
        conv.init(jax.random.key(0), jnp.ones((5, 5, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        conv.init(jax.random.key(0), jnp.ones((1, 5, 5, 3), jnp.int32))
    dense = L.ConvexPotentialDense(4)
    variables = dense.init(jax.random.key(0), jnp.ones((1, 6)))
    with pytest.raises(ValueError, match="NaN or inf"):
        dense.apply(variables, jnp.array([[0.0, 1.0, np.nan, 0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        dense.apply(variables, jnp.full((1, 6), np.inf))


def test_wrong_channel_count_is_reported():
    conv = L.ConvexPotentialConv(4)
    variables = conv.init(jax.random.key(0), jnp.ones((1, 5, 5, 3)))
    with pytest.raises(Exception, match="shape"):
        conv.apply(variables, jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="input size changed"):
        conv.apply(variables, jnp.ones((1, 6, 6, 3)))
    with pytest.raises(ValueError, match="3 features"):
        L.Normalize((0.0,) * 3, (1.0,) * 3).apply({}, jnp.ones((1, 4, 4, 2)))


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: L.ConvexPotentialDense(0), "features"),
        (lambda: L.ConvexPotentialDense(4, power_iters=-1), "power_iters"),
        (lambda: L.ConvexPotentialDense(4, activation="gelu"), "unknown activation"),
        (lambda: L.ConvexPotentialConv(4, kernel_size=(3,)), "kernel_size"),
        (lambda: L.ConvexPotentialConv(4, strides=(0, 1)), "strides"),
        (lambda: L.ConvexPotentialConv(4, padding="REFLECT"), "padding"),
        (lambda: L.ConvexPotentialDense(4, step=0.0), "step"),
        (lambda: L.ConvexPotentialConv(4, step=float("nan")), "step must be finite"),
        (lambda: L.SpectralDense(4, bjorck_iters=-2), "bjorck_iters"),
        (lambda: L.SpectralConv(4, padding="REFLECT"), "SpectralConv: padding"),
        (lambda: L.ConstrainedDense(0), "features"),
        (lambda: L.GroupSort(0), "group_size"),
        (lambda: L.SLLConv(4, activation="gelu"), "unknown activation"),
        (lambda: L.SLLConv(4, kernel_size=(3, 0)), "SLLConv: kernel_size"),
        (lambda: L.Normalize((0.0,), (0.0,)), "std"),
        (lambda: L.Repeat(L.ConvexPotentialDense(4), 0), "depth"),
    ],
)
def test_invalid_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()
