"""PGD-l2 and the minimal-distance attack: they find what exists, and only that."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipjax import attacks, audit, export, layers, models

N, D, C = 32, 12, 4


def _linear(weights, bias):
    w, b = jnp.asarray(weights), jnp.asarray(bias)
    return lambda x: x @ w + b


@pytest.fixture(scope="module")
def linear_problem():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, C)).astype(np.float32) * 3.0  # large weights: not robust
    b = rng.normal(size=C).astype(np.float32)
    x = rng.uniform(0.3, 0.7, size=(N, D)).astype(np.float32)
    apply_fn = _linear(w, b)
    y = np.asarray(apply_fn(x)).argmax(-1).astype(np.int32)  # correctly classified by construction
    # Exact l2 distance of each point to its class region's boundary (a linear model's
    # decision regions are polyhedra; the distance to the nearest hyperplane f_y = f_j).
    logits = np.asarray(apply_fn(x), np.float64)
    gaps = logits[np.arange(N), y][:, None] - logits
    rows = np.linalg.norm(w.T[y][:, None, :] - w.T[None, :, :], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(np.arange(C)[None] == y[:, None], np.inf, gaps / rows).min(-1)
    return apply_fn, x, y, dist


def _predict(apply_fn, x):
    return np.asarray(apply_fn(x)).argmax(-1)


def test_pgd_flips_a_non_robust_model(linear_problem):
    apply_fn, x, y, dist = linear_problem
    x_adv = attacks.pgd_l2(apply_fn, x, y, eps=float(dist.max()) * 3.0, clip=None)
    assert (_predict(apply_fn, x_adv) != y).all()


@pytest.mark.parametrize("loss", attacks.LOSSES)
def test_pgd_reaches_the_exact_boundary_distance_of_a_linear_model(loss):
    # Two classes: one separating hyperplane, at distance |f_0 - f_1| / ||w_0 - w_1||.
    rng = np.random.default_rng(2)
    w = rng.normal(size=(D, 2)).astype(np.float32)
    apply_fn = _linear(w, np.zeros(2, np.float32))
    x = rng.normal(size=(N, D)).astype(np.float32)
    logits = np.asarray(apply_fn(x), np.float64)
    y = logits.argmax(-1).astype(np.int32)
    dist = np.abs(logits[:, 0] - logits[:, 1]) / np.linalg.norm(w[:, 0] - w[:, 1])
    # From a random start on the sphere, PGD rotates towards the optimal direction by an
    # angle ~ step_size / eps per step: large steps get there within the budget.
    kwargs = {"steps": 50, "loss": loss, "clip": None}
    outside = attacks.pgd_l2(apply_fn, x, y, eps=dist * 1.01, step_size=dist / 2, **kwargs)
    inside = attacks.pgd_l2(apply_fn, x, y, eps=dist * 0.99, step_size=dist / 2, **kwargs)
    assert (_predict(apply_fn, outside) != y).all()
    assert (_predict(apply_fn, inside) == y).all()


@pytest.mark.parametrize("loss", attacks.LOSSES)
def test_pgd_respects_eps_and_the_data_range(linear_problem, loss):
    apply_fn, x, y, dist = linear_problem
    eps = np.linspace(0.05, 2.0, N).astype(np.float32)
    x_adv = np.asarray(
        attacks.pgd_l2(apply_fn, x, y, eps=eps, steps=7, restarts=2, loss=loss, clip=(0.0, 1.0))
    )
    norms = np.linalg.norm((x_adv - x).reshape(N, -1), axis=-1)
    assert (norms <= eps * (1 + 1e-5) + 1e-6).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert norms.max() > 0  # it moved


def test_more_restarts_never_weaken_the_attack(linear_problem):
    apply_fn, x, y, dist = linear_problem
    eps = dist * 0.9
    margins = [
        np.asarray(
            attacks.attack_margin(
                apply_fn(attacks.pgd_l2(apply_fn, x, y, eps, steps=3, restarts=r)), jnp.asarray(y)
            )
        )
        for r in (1, 4)
    ]
    assert (margins[1] <= margins[0] + 1e-5).all()


@pytest.fixture(scope="module")
def lipschitz_model():
    model = models.cpl_mnist_dense(num_classes=C, depth=2, features=32, head="lln")
    x = jax.random.uniform(jax.random.key(0), (N, D))
    variables = model.init(jax.random.key(1), x)
    for _ in range(20):  # converge the power iteration so the layers are near their bound
        _, updates = model.apply(variables, x, update_stats=True, mutable=[layers.POWER_ITERATION])
        variables = {**variables, **updates}
    exported = export.export(model, variables, input_shape=(D,))
    return exported, np.asarray(x)


def test_pgd_never_crosses_a_certificate(lipschitz_model):
    exported, x = lipschitz_model
    logits = exported.apply(x)
    y = np.asarray(logits).argmax(-1).astype(np.int32)
    radii = np.asarray(exported.certified_radius(logits, labels=y))
    assert (radii > 0).all()
    x_adv = attacks.pgd_l2(exported.apply, x, y, eps=radii, steps=40, restarts=3, loss="margin", clip=None)
    assert (_predict(exported.apply, x_adv) == y).all()
    # The same attack at 3x the radius does move the logits: it is not a no-op.
    moved = attacks.pgd_l2(exported.apply, x, y, eps=3 * radii, steps=40, loss="margin", clip=None)
    margin_clean = np.asarray(attacks.attack_margin(logits, jnp.asarray(y)))
    margin_moved = np.asarray(attacks.attack_margin(exported.apply(moved), jnp.asarray(y)))
    assert (margin_moved < margin_clean - 1e-4).all()


def test_min_distance_binary_matches_a_linear_model():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(D, 1)).astype(np.float32)
    w /= np.linalg.norm(w)  # 1-Lipschitz: the distance to the boundary is exactly |f(x)|
    apply_fn = _linear(w, np.float32(0.1))
    x = rng.normal(size=(N, D)).astype(np.float32)
    _, distance = attacks.min_distance_binary(apply_fn, x)
    f = np.abs(np.asarray(apply_fn(x))[:, 0])
    np.testing.assert_allclose(np.asarray(distance), f, rtol=1e-3, atol=1e-5)


def test_min_distance_binary_is_never_below_the_lipschitz_bound():
    model = layers.Sequential([layers.Repeat(layers.ConvexPotentialDense(16), 2), layers.FrobeniusDense(1)])
    x = jax.random.normal(jax.random.key(2), (N, D))
    variables = model.init(jax.random.key(3), x)
    exported = export.export(model, variables, input_shape=(D,))
    adv, distance = attacks.min_distance_binary(exported.apply, x)
    f = np.abs(np.asarray(exported.apply(x)).reshape(-1))
    found = np.isfinite(np.asarray(distance))
    assert found.any()
    assert (np.asarray(distance)[found] * exported.lipschitz >= f[found] * (1 - 1e-4)).all()
    flipped = np.sign(np.asarray(exported.apply(adv)).reshape(-1)) != np.sign(
        np.asarray(exported.apply(x)).reshape(-1)
    )
    assert (flipped == found).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -1.0}, "eps must be finite and >= 0"),
        ({"eps": np.ones(3)}, "one value per example"),
        ({"eps": 0.1, "steps": 0}, "steps and restarts"),
        ({"eps": 0.1, "loss": "hinge"}, "unknown attack loss"),
        ({"eps": 0.1, "clip": (1.0, 0.0)}, "low < high"),
    ],
)
def test_pgd_bad_input(linear_problem, kwargs, match):
    apply_fn, x, y, _ = linear_problem
    with pytest.raises(ValueError, match=match):
        attacks.pgd_l2(apply_fn, x, y, **kwargs)


def test_pgd_bad_arrays(linear_problem):
    apply_fn, x, y, _ = linear_problem
    with pytest.raises(ValueError, match="NaN"):
        attacks.pgd_l2(apply_fn, np.full_like(x, np.nan), y, 0.1)
    with pytest.raises(TypeError, match="integers"):
        attacks.pgd_l2(apply_fn, x, y.astype(np.float32), 0.1)
    with pytest.raises(ValueError, match="labels must have shape"):
        attacks.pgd_l2(apply_fn, x, y[:3], 0.1)


def test_audit_finds_wrong_certificates_and_passes_true_ones():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(D, 2)).astype(np.float32)
    apply_fn = _linear(w, np.zeros(2, np.float32))
    x = rng.normal(size=(N, D)).astype(np.float32)
    logits = np.asarray(apply_fn(x), np.float64)
    y = logits.argmax(-1).astype(np.int32)
    y[:4] = 1 - y[:4]  # misclassified: negative radius, never attacked
    radius = (logits[np.arange(N), y] - logits[np.arange(N), 1 - y]) / np.linalg.norm(w[:, 0] - w[:, 1])
    # The exact (float64) radius, less 0.1%: at the exact boundary the float32 logits' rounding
    # decides the class, which is the float-rounding gap a certificate has to cover.
    true = audit.audit_certificates(apply_fn, x, y, radius * 0.999)
    assert (true.examples, true.certified, true.violations) == (N, N - 4, 0)
    assert np.median(true.tightness) > 0.95  # the attack went all the way to the boundary
    inflated = audit.audit_certificates(apply_fn, x, y, radius * 1.1)
    assert inflated.violations == N - 4
    np.testing.assert_array_equal(np.sort(inflated.violating_indices), np.arange(4, N))
    assert "violations" in inflated.summary()


def test_audit_of_an_exported_lipschitz_model_has_no_violation(lipschitz_model):
    exported, x = lipschitz_model
    logits = exported.apply(x)
    y = np.asarray(logits).argmax(-1).astype(np.int32)
    radii = np.asarray(exported.certified_radius(logits, labels=y))
    report = audit.audit_certificates(exported.apply, x, y, radii, steps=20, restarts=2)
    assert report.certified == N and report.violations == 0, report.summary()
