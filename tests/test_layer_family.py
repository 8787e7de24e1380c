"""The dynamical-system layer family as Flax layers: orthogonality, certificates, export, errors.

The exact-Jacobian bound check of every kind is in tests/test_layers.py (table
LAYERS); here: the stronger claims (orthogonality of Cayley and SOC within a
stated tolerance, with the exported bound covering the measured deviation),
the flow block, centering semantics, LLN / Householder on top of every layer,
export round trips and hyperparameter errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import jacobian_singular_values, train_a_few_steps

from lipjax import export
from lipjax import layers as L

IMAGE = (6, 6, 4)
VECTOR = (12,)

# Orthogonal layers: every Jacobian singular value within ORTHO_TOL of 1 (float32
# forward passes, reverse-mode Jacobian), and a certificate at most CERT_SLACK above 1.
ORTHO_TOL = 1e-4
CERT_SLACK = 1e-3

ORTHOGONAL = [
    ("cayley_dense", L.CayleyDense(12), VECTOR),
    ("cayley_conv", L.CayleyConv(), IMAGE),
    ("soc_dense", L.SOCDense(12), VECTOR),
    ("soc_conv_same", L.SOCConv(), IMAGE),
    ("soc_conv_circular_few_terms", L.SOCConv(padding="CIRCULAR", terms=6), IMAGE),
]


def _trained(module, shape, steps=4):
    x = jax.random.uniform(jax.random.key(0), (8, *shape))
    variables = module.init(jax.random.key(1), x)
    return train_a_few_steps(module, variables, x, steps=steps), x


@pytest.mark.parametrize("name,module,shape", ORTHOGONAL, ids=[p[0] for p in ORTHOGONAL])
def test_orthogonal_layers_singular_values_and_certificate(name, module, shape):
    variables, _ = _trained(module, shape)
    exported = export.export(module, variables, shape)
    points = jax.random.normal(jax.random.key(2), (4, *shape))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], points)
    deviation = np.abs(singular - 1.0).max()
    assert deviation <= ORTHO_TOL, deviation
    assert singular.max() <= exported.lipschitz  # the bound covers the measured deviation
    assert exported.lipschitz <= 1.0 + CERT_SLACK  # and is not vacuous


def test_soc_certificate_carries_the_taylor_remainder():
    """Few terms and a large generator: the truncated series exceeds 1 and the bound says so."""
    module = L.SOCConv(terms=2, max_norm=3.0)
    variables, _ = _trained(module, IMAGE, steps=1)
    exported = export.export(module, variables, IMAGE)
    points = jax.random.normal(jax.random.key(3), (4, *IMAGE))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], points)
    assert singular.max() > 1.0 + 1e-3  # plain truncation is not orthogonal
    assert singular.max() <= exported.lipschitz


def test_exported_soc_kernel_is_exactly_skew():
    module = L.SOCConv(kernel_size=(3, 3))
    variables, _ = _trained(module, IMAGE)
    (layer,) = export.export(module, variables, IMAGE).layers
    s = layer.arrays["skew_kernel"]
    np.testing.assert_array_equal(s, -np.flip(s, (0, 1)).swapaxes(2, 3))


@pytest.mark.parametrize("skew", ["cayley", "exp"])
@pytest.mark.parametrize("conv", [True, False])
def test_flow_block_exports_one_scanned_chain(skew, conv):
    shape = IMAGE if conv else VECTOR
    module = L.ConvexPotentialFlow(5, depth=3, skew=skew, conv=conv)
    variables, x = _trained(module, shape)
    leaves = jax.tree.leaves(variables["params"])
    assert all(leaf.shape[0] == 3 for leaf in leaves)  # one stacked copy per time step
    exported = export.export(module, variables, shape)
    (layer,) = exported.layers
    assert layer.kind == "chain" and layer.depth == 3
    steps = [s["kind"] for s in layer.config["steps"]]
    assert steps[0].startswith("convex_potential")
    points = jax.random.normal(jax.random.key(4), (4, *shape))
    singular = jacobian_singular_values(lambda v: exported.apply(v[None])[0], points)
    assert singular.max() <= exported.lipschitz <= 1.0 + CERT_SLACK


def test_flow_matches_flax_once_power_iteration_converged():
    module = L.ConvexPotentialFlow(6, depth=2, conv=False)
    variables, x = _trained(module, VECTOR)
    converge = jax.jit(lambda v: module.apply(v, x, update_stats=True, mutable=[L.POWER_ITERATION])[1])
    for _ in range(200):
        variables = {**variables, **converge(variables)}
    exported = export.export(module, variables, VECTOR)
    np.testing.assert_allclose(exported.apply(x), module.apply(variables, x), atol=1e-4)


FAMILY = [
    ("aol_conv", L.AOLConv(4), IMAGE),
    ("sll_conv", L.SLLConv(6), IMAGE),
    ("cayley_conv", L.CayleyConv(), IMAGE),
    ("soc_conv", L.SOCConv(), IMAGE),
    ("layer_centering", L.LayerCentering(), IMAGE),
    ("batch_centering", L.BatchCentering(), IMAGE),
    ("aol_dense", L.AOLDense(8), VECTOR),
    ("sll_dense", L.SLLDense(8), VECTOR),
    ("cayley_dense", L.CayleyDense(8), VECTOR),
    ("soc_dense", L.SOCDense(8), VECTOR),
]


def _with_head(module, shape):
    """The layer, a Householder activation, then (images) flatten, and an LLN head."""
    return L.Sequential(
        [module, L.Householder(), *([L.Flatten()] if len(shape) == 3 else []), L.NormalizedDense(3)]
    )


@pytest.mark.parametrize("name,module,shape", FAMILY, ids=[p[0] for p in FAMILY])
def test_householder_lln_and_round_trip_with_every_layer(tmp_path, name, module, shape):
    model = _with_head(module, shape)
    variables, x = _trained(model, shape)
    exported = export.export(model, variables, shape)
    assert exported.has_head
    # Export equals the Flax evaluation (these layers have no power-iteration gap).
    np.testing.assert_allclose(exported.apply(x), model.apply(variables, x), atol=1e-4)
    body = export.Exported(exported.layers[:-1], shape)
    singular = jacobian_singular_values(lambda v: body.apply(v[None])[0], x[:4])
    assert singular.max() <= exported.body_lipschitz
    path = tmp_path / f"{name}.npz"
    export.save(path, exported)
    loaded = export.load(path)
    np.testing.assert_array_equal(loaded.apply(x), exported.apply(x))
    assert loaded.lipschitz == pytest.approx(exported.lipschitz, rel=1e-12)
    radii = loaded.certified_radius(loaded.apply(x))
    assert np.all(np.asarray(radii) >= 0)


def test_batch_centering_running_mean_and_eval():
    module = L.BatchCentering(momentum=0.5)
    x = jax.random.normal(jax.random.key(0), (16, 3, 3, 2)) + jnp.array([2.0, -1.0])
    variables = module.init(jax.random.key(1), x)
    np.testing.assert_array_equal(variables[L.POWER_ITERATION]["mean"], 0.0)
    y, updates = module.apply(variables, x, update_stats=True, mutable=[L.POWER_ITERATION])
    batch_mean = np.asarray(x).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(y).mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(updates[L.POWER_ITERATION]["mean"], 0.5 * batch_mean, rtol=1e-5)
    trained = {**variables, **updates}
    evaluated = module.apply(trained, x)
    np.testing.assert_allclose(evaluated, np.asarray(x) - 0.5 * batch_mean, rtol=1e-5, atol=1e-6)
    exported = export.export(module, trained, (3, 3, 2))
    np.testing.assert_allclose(exported.apply(x), evaluated, atol=1e-6)
    with pytest.raises(ValueError, match="power_iteration"):
        module.apply({}, x)


def test_layer_centering_is_a_projection():
    module = L.LayerCentering()
    x = jax.random.normal(jax.random.key(0), (4, 5, 5, 3))
    y = module.apply({}, x)
    np.testing.assert_allclose(np.asarray(y).mean(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(module.apply({}, y), y, atol=1e-6)  # idempotent


def test_tampered_chain_is_refused(tmp_path):
    module = L.ConvexPotentialFlow(4, depth=2, conv=False)
    variables, _ = _trained(module, VECTOR)
    good = tmp_path / "flow.npz"
    export.save(good, export.export(module, variables, VECTOR))
    with np.load(good, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    contents["0/1/kernel"] = contents["0/1/kernel"] * 3  # the skew step's kernel
    np.savez(tmp_path / "bad.npz", **contents)
    with pytest.raises(ValueError, match="altered or corrupted"):
        export.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: L.CayleyConv(padding="SAME"), "CayleyConv: padding"),
        (lambda: L.CayleyConv(features=0), "features"),
        (lambda: L.CayleyConv(kernel_size=(2, 2)), "kernel_size"),
        (lambda: L.SOCConv(terms=0), "terms"),
        (lambda: L.SOCConv(padding="VALID"), "SOCConv: padding"),
        (lambda: L.SOCConv(max_norm=0.0), "max_norm"),
        (lambda: L.SOCDense(4, terms=0), "terms"),
        (lambda: L.SOCDense(4, max_norm=-1.0), "max_norm"),
        (lambda: L.SLLDense(0), "features"),
        (lambda: L.AOLConv(4, strides=(0, 1)), "AOLConv: strides"),
        (lambda: L.BatchCentering(momentum=1.5), "momentum"),
        (lambda: L.ConvexPotentialFlow(4, skew="rotation"), "skew"),
        (lambda: L.ConvexPotentialFlow(4, depth=0), "depth"),
        (lambda: L.ConvexPotentialFlow(4, padding="SAME"), "CayleyConv: padding"),
    ],
)
def test_bad_hyperparameters_name_themselves(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_cayley_conv_kernel_larger_than_image_is_reported():
    module = L.CayleyConv(kernel_size=(5, 5))
    with pytest.raises(ValueError, match="larger than the image"):
        module.init(jax.random.key(0), jnp.ones((1, 3, 3, 2)))
