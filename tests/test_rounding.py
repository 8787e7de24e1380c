"""Float rounding bounds: float32 against float64 outputs, radii that subtract the bound."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_layers import LAYERS, SMALL_NETWORKS

from lipjax import certify, export, models, ops, rounding
from lipjax import layers as L
from lipjax.ops import rounding as fe


def _perturbed(module, shape, seed=0):
    """Initial variables with every parameter and statistic moved a little (no training)."""
    x = jax.random.normal(jax.random.key(seed), (2, *shape))
    variables = jax.jit(module.init)(jax.random.key(seed + 1), x)  # eager init is slow
    # Statistics too: a batch-centering mean of 0 would make its rounding check vacuous.
    leaves, tree = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed + 2), max(len(leaves), 1))
    moved = [v + 0.05 * jax.random.normal(k, v.shape, v.dtype) for v, k in zip(leaves, keys, strict=False)]
    return jax.tree.unflatten(tree, moved)


def _total(exported, bound):
    """Bound of ||logits32 - logits|| per example (head: its input error through ||W_head||)."""
    head = exported.layers[-1].lipschitz if exported.has_head else 1.0
    return bound.logit_error + head * bound.feature_error


def _dtypes(jaxpr):
    """Every dtype produced anywhere in a (closed) jaxpr, sub-jaxprs included."""
    found = set()
    for eqn in jaxpr.eqns:
        found.update(str(v.aval.dtype) for v in eqn.outvars if hasattr(v.aval, "dtype"))
        for param in eqn.params.values():
            subs = param if isinstance(param, tuple | list) else (param,)
            for sub in subs:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found |= _dtypes(inner)
    return found


def _bounded(exported):
    return all(L.KINDS[l.kind].rounding is not None for l in exported.layers) and not any(
        l.kind == "chain" and any(s["kind"] == "frequency_conv" for s in l.config["steps"])
        for l in exported.layers
    )


BOUNDED = [row for row in LAYERS if row[0] not in ("cpl_dense_softplus",)] + [
    # a circular kernel larger than the image: taps alias, the adjoint folds several periods
    ("cpl_conv_circular_wide_kernel", L.ConvexPotentialConv(3, (5, 5), padding="CIRCULAR"), (3, 3, 2), False),
]


@pytest.mark.parametrize("name,module,shape,orthogonal", BOUNDED, ids=[p[0] for p in BOUNDED])
def test_float32_output_within_bound_of_float64(name, module, shape, orthogonal):
    exported = export.export(module, _perturbed(module, shape), shape)
    if not _bounded(exported):
        with pytest.raises(fe.NoRoundingBound, match="no float rounding bound"):
            exported.rounding_bound(np.ones(3))
        return
    x = 3.0 * jax.random.normal(jax.random.key(7), (16, *shape))
    f32 = np.asarray(exported.apply(x), np.float64)
    f64 = rounding.forward(exported, x, "float64")
    norms = rounding.input_norms(x)
    b32, b64 = exported.rounding_bound(norms, "float32"), exported.rounding_bound(norms, "float64")
    observed = np.linalg.norm((f32 - f64).reshape(16, -1), axis=1)
    # ||f32 - f64|| <= ||f32 - f|| + ||f - f64||, both bounded.
    assert np.all(observed <= _total(exported, b32) + _total(exported, b64)), (observed, b32)
    if observed.max() > 0:
        ratio = float(np.median(_total(exported, b32) / np.maximum(observed, 1e-30)))
        print(f"\n{name}: float32 bound / observed error = {ratio:.0f}")  # pytest -s; quoted in the README
        assert ratio < 1e4, f"{name}: bound {ratio:.0f} x the observed error"
    exact = ("flatten", "channel_pad", "channel_truncate", "pixel_unshuffle", "group_sort", "full_sort")
    if all(l.kind in exact or l.config.get("name") == "relu" for l in exported.layers):
        assert np.all(b32.logit_error == 0) and observed.max() == 0
    # The float64 pass really is float64 throughout (a silent cast to float32 would void its bound).
    with jax.enable_x64(True):
        arrays = tuple({k: jnp.asarray(v, jnp.float64) for k, v in a.items()} for a in exported._arrays)
        jaxpr = jax.make_jaxpr(exported._jitted)(jnp.asarray(x, jnp.float64), arrays)
    assert "float32" not in _dtypes(jaxpr.jaxpr), name


def _network_case(model, shape, seed=3):
    exported = export.export(model, _perturbed(model, shape, seed), shape)
    x = jax.random.uniform(jax.random.key(seed), (32, *shape))
    f32 = np.asarray(exported.apply(x), np.float64)
    f64 = rounding.forward(exported, x, "float64")
    norms = rounding.input_norms(x)
    bound32 = _total(exported, exported.rounding_bound(norms, "float32"))
    bound64 = _total(exported, exported.rounding_bound(norms, "float64"))
    observed = np.linalg.norm(f32.reshape(32, -1) - f64.reshape(32, -1), axis=1)
    return exported, observed, bound32, bound64


@pytest.mark.parametrize(
    "model,shape",
    [
        (models.cpl_mnist_dense(depth=2, features=32), (28, 28, 1)),
        (SMALL_NETWORKS[0][1], SMALL_NETWORKS[0][2]),
        (SMALL_NETWORKS[1][1], SMALL_NETWORKS[1][2]),
    ],
    ids=["cpl_mnist_dense", SMALL_NETWORKS[0][0], SMALL_NETWORKS[1][0]],
)
def test_network_float32_logits_within_bound(model, shape):
    _, observed, bound32, bound64 = _network_case(model, shape)
    assert np.all(observed <= bound32 + bound64)
    assert np.all(observed > 0)  # the two passes really differ: the check is not vacuous
    assert np.all(bound64 < 1e-8 * bound32)
    assert np.median(bound32 / observed) < 1e5


def _near_tie_model(width=64):
    """One dense layer whose two logits differ by ~1e-7 relative: a tiny float32 margin."""
    kernel = np.ones((width, 2), np.float32)
    kernel[:, 1] = np.float32(1.0 - 2.0**-22)
    return export.Exported([export._make_layer("dense", {}, {"kernel": kernel}, (width,))], (width,))


def test_margin_below_the_rounding_bound_is_not_certified():
    exported = _near_tie_model()
    x = np.ones((1, 64), np.float32)
    logits = exported.apply(x)
    assert float(logits[0, 0] - logits[0, 1]) > 0  # float32 says class 0, with a margin
    assert float(exported.certified_radius(logits, labels=np.array([0]))[0]) > 0  # old rule: certified
    bound = exported.rounding_bound(rounding.input_norms(x), "float32")
    assert float(bound.logit_error[0]) * np.sqrt(2) > float(logits[0, 0] - logits[0, 1])
    radius = exported.certified_radius(logits, labels=np.array([0]), bound=bound)
    assert float(radius[0]) <= 0
    assert float(exported.certify(x, np.array([0]), precision="float32")[0]) <= 0
    assert exported.certified_accuracy(x, np.array([0]), [0.0], precision="float32")[0] == 0.0
    # Certify-level, every formula: a margin of 1e-4 against an error of 1e-3.
    plain = certify.certified_radius(jnp.array([[1.0, 1.0 - 1e-4]]), 1.0, logit_error=1e-3)
    binary = certify.certified_radius(jnp.array([1e-4]), 1.0, logit_error=1e-3)
    head = certify.certified_radius(jnp.array([[1.0, 1.0 - 1e-4]]), 1.0, head=jnp.eye(2), feature_error=1e-3)
    assert float(plain[0]) < 0 and float(binary[0]) < 0 and float(head[0]) < 0


@pytest.mark.parametrize("head", [False, True])
def test_radii_with_bound_never_exceed_radii_without(head):
    logits = jax.random.normal(jax.random.key(0), (64, 5))
    labels = jnp.arange(64) % 5
    rows = jax.random.normal(jax.random.key(1), (5, 8)) if head else None
    errors = jax.random.uniform(jax.random.key(2), (64,), maxval=0.1)
    exact = certify.certified_radius(logits, 2.0, head=rows, labels=labels)
    zero = certify.certified_radius(logits, 2.0, head=rows, labels=labels, logit_error=jnp.zeros(64))
    np.testing.assert_array_equal(exact, zero)
    kwargs = {"feature_error": errors} if head else {}
    lowered = certify.certified_radius(logits, 2.0, head=rows, labels=labels, logit_error=errors, **kwargs)
    assert np.all(lowered <= exact) and np.any(lowered < exact)
    if not head:  # the plain formula moves every radius by exactly E / L
        np.testing.assert_allclose(exact - lowered, errors / 2.0, rtol=1e-4, atol=1e-7)
    binary = certify.certified_radius(logits[:, 0], 2.0, labels=labels % 2, logit_error=errors)
    plain = certify.certified_radius(logits[:, 0], 2.0, labels=labels % 2)
    np.testing.assert_allclose(plain - binary, errors / 2.0, rtol=1e-4, atol=1e-7)


def test_model_certificates_use_the_bound():
    exported, _, _, _ = _network_case(models.cpl_mnist_dense(depth=2, features=32), (28, 28, 1))
    x = jax.random.uniform(jax.random.key(5), (16, 28, 28, 1))
    labels = np.arange(16) % 10
    logits, bound = exported.certified_logits(x, precision="float32")
    assert logits.dtype == np.float32 and bound.dtype == "float32"
    with_bound = exported.certify(x, labels, precision="float32")
    without = np.asarray(exported.certified_radius(logits, labels=labels))
    assert np.all(with_bound <= without) and np.all(with_bound < without)
    report = exported.evaluate(x, labels, [0.0], precision="float32")
    np.testing.assert_array_equal(report.radii, with_bound)
    assert report.rounding_error > 0 and report.as_dict()["precision"] == "float32"


def test_abs_conv_norm_bound_dominates_the_tap_matrix():
    rng = np.random.default_rng(0)
    for strides, padding in [((1, 1), "SAME"), ((2, 2), "VALID"), ((2, 1), "CIRCULAR")]:
        kernel = np.abs(rng.normal(size=(3, 3, 2, 3))).astype(np.float32)
        basis = np.eye(5 * 5 * 2, dtype=np.float32).reshape(-1, 5, 5, 2)
        columns = np.asarray(ops.conv(jnp.asarray(basis), jnp.asarray(kernel), strides, padding))
        matrix = columns.reshape(len(basis), -1).T  # |A| (no tap lands twice on a pixel here)
        assert np.linalg.norm(matrix, 2) <= fe.abs_conv_norm_bound(kernel) * (1 + 1e-6)
        assert np.linalg.norm(matrix, 2) <= fe.abs_matrix_norm_bound(matrix) * (1 + 1e-6)


def test_bad_inputs_raise_clear_errors():
    exported = _near_tie_model()
    with pytest.raises(ValueError, match="input_norm must be finite and >= 0"):
        exported.rounding_bound(np.array([-1.0]))
    with pytest.raises(ValueError, match="input_norm must be finite"):
        exported.rounding_bound(np.array([np.inf]))
    with pytest.raises(ValueError, match="no rounding analysis for dtype float16"):
        exported.rounding_bound(np.ones(1), "float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        exported.certify(np.ones((1, 64)), precision="bfloat16")
    with pytest.raises(ValueError, match="logit_error must be finite and >= 0"):
        certify.certified_radius(jnp.ones((2, 3)), 1.0, logit_error=-1.0)
    with pytest.raises(ValueError, match="logit_error must be a scalar or have shape"):
        certify.certified_radius(jnp.ones((2, 3)), 1.0, logit_error=jnp.ones(3))
    with pytest.raises(ValueError, match="give head too"):
        certify.certified_radius(jnp.ones((2, 3)), 1.0, feature_error=0.1)
    with pytest.raises(ValueError, match="too wide"):
        fe.gamma(2**23, 2.0**-24)
    with pytest.raises(fe.NoRoundingBound, match="softplus"):
        fe.activation(fe.start(1.0), "softplus", 2.0**-24)


def test_layers_without_a_bound_warn_and_still_certify():
    module = L.CayleyConv()
    exported = export.export(module, _perturbed(module, (6, 6, 4)), (6, 6, 4))
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 4))
    with pytest.raises(fe.NoRoundingBound, match=r"layer 0 \(frequency_conv\)"):
        exported.rounding_bound(np.ones(4))
    with pytest.warns(rounding.RoundingWarning, match="do not account for float rounding"):
        logits, bound = exported.certified_logits(x)
    assert bound is None and logits.shape == (4, 6, 6, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _near_tie_model().certify(np.ones((1, 64), np.float32))  # bounded kinds: no warning
