"""Tests of lipjax.bounds (the ``lipjax bounds`` command: tests/test_bounds_cli.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lipjax import bounds as B

NORMS = (1, 2, math.inf)
TOL = 1 + 1e-9


def random_net(rng, depth, max_width=4, min_width=1):
    dims = rng.integers(min_width, max_width + 1, size=depth + 2)
    return [rng.normal(size=(dims[r + 1], dims[r])) for r in range(depth + 1)]


def brute_k5(ws, p):
    """K5 from its definition: norm of the explicit sum over all 2^l chains."""
    n = len(ws)
    prods = B.partial_products(B.validate_weights(ws))
    total = np.zeros((ws[-1].shape[0], ws[0].shape[1]))
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            chain = (0, *cuts, n)
            acc = np.eye(ws[0].shape[1])
            for a, b in itertools.pairwise(chain):
                acc = np.abs(prods[(b, a)]) @ acc
            total += acc
    return B.matrix_norm(total / 2 ** (n - 1), p)


def brute_k_exact(ws, p):
    """K by looping over every pattern one at a time (independent of the batched code)."""
    hidden = [w.shape[0] for w in ws[:-1]]
    best = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=sum(hidden)):
        acc, pos = ws[0], 0
        for w, h in zip(ws[1:], hidden, strict=True):
            acc = w @ (np.array(bits[pos : pos + h])[:, None] * acc)
            pos += h
        best = max(best, B.matrix_norm(acc, p))
    return best


# ---------------------------------------------------------------------------
# Fast paths against brute force.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", NORMS)
def test_k1_dp_equals_brute_force(p):
    rng = np.random.default_rng(1)
    for depth in range(0, 7):
        for _ in range(3):
            ws = random_net(rng, depth)
            assert B.k1(ws, p) == pytest.approx(B.k1_bruteforce(ws, p), rel=1e-12)


@pytest.mark.parametrize("p", NORMS)
def test_k5_dp_equals_its_definition(p):
    rng = np.random.default_rng(2)
    for depth in range(0, 6):
        ws = random_net(rng, depth)
        assert B.k5(ws, p) == pytest.approx(brute_k5(ws, p), rel=1e-12)


@pytest.mark.parametrize("p", NORMS)
def test_k_exact_batched_equals_loop(p):
    rng = np.random.default_rng(3)
    for depth in range(0, 4):
        ws = random_net(rng, depth, max_width=3)
        assert B.k_exact(ws, p) == pytest.approx(brute_k_exact(ws, p), rel=1e-12)


# ---------------------------------------------------------------------------
# Ordering.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, math.inf])
def test_ordering_l1_linf(p):
    rng = np.random.default_rng(4)
    for _ in range(40):
        ws = random_net(rng, int(rng.integers(0, 5)), max_width=4)
        b = B.lipschitz_bounds(ws, p)
        assert b["K"] <= b["K5"] * TOL
        assert b["K5"] <= b["K4"] * TOL
        assert b["K4"] <= min(b["K1"], b["K3"]) * TOL
        assert max(b["K1"], b["K3"]) <= b["K_star"] * TOL


def test_ordering_l2_documented_part():
    rng = np.random.default_rng(5)
    for _ in range(30):
        ws = random_net(rng, int(rng.integers(0, 5)), max_width=4)
        b = B.lipschitz_bounds(ws, 2)
        assert b["K"] <= b["K1"] * TOL <= b["K_star"] * TOL**2
        assert b["K"] <= b["K5"] * TOL
        assert b["K5"] <= b["K4"] * TOL <= b["K3"] * TOL**2


@pytest.mark.parametrize("p", NORMS)
def test_jacobians_never_exceed_k(p):
    rng = np.random.default_rng(6)
    for _ in range(5):
        ws = random_net(rng, 3, max_width=4, min_width=2)
        bs = [rng.normal(size=w.shape[0]) for w in ws]
        k = B.k_exact(ws, p)
        for x in rng.normal(size=(200, ws[0].shape[1])):
            assert B.matrix_norm(B.jacobian_at(ws, bs, x), p) <= k * TOL


def test_k5_strictly_tighter_than_k4_sometimes():
    rng = np.random.default_rng(7)
    gaps = []
    for _ in range(20):
        ws = [rng.normal(size=(10, 8)), rng.normal(size=(6, 10)), rng.normal(size=(3, 6))]
        gaps.append(B.k4(ws, math.inf) - B.k5(ws, math.inf))
    assert min(gaps) >= -1e-9
    assert max(gaps) > 1e-3


def test_lower_bound_interval():
    rng = np.random.default_rng(8)
    ws = [rng.normal(size=(6, 4)), rng.normal(size=(5, 6)), rng.normal(size=(2, 5))]
    bs = [rng.normal(size=w.shape[0]) for w in ws]
    for p in (1, math.inf):
        lo = B.lipschitz_lower_bound(ws, p, bs, num_starts=32, num_steps=60)
        k = B.k_exact(ws, p)
        assert 0.5 * k <= lo <= k * TOL


# ---------------------------------------------------------------------------
# Closed forms.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", NORMS)
def test_single_matrix_all_bounds_equal_norm(p):
    w = np.random.default_rng(9).normal(size=(5, 3))
    b = B.lipschitz_bounds([w], p)
    expected = {1: np.abs(w).sum(0).max(), 2: np.linalg.svd(w)[1][0], math.inf: None}
    expected[math.inf] = np.abs(w).sum(1).max()
    for name in ("K_star", "K", "K1"):
        assert b[name] == pytest.approx(expected[p], rel=1e-12)
    # The entrywise-absolute bounds equal || |W| ||_p: ||W||_p for p in {1, inf}, more for p=2.
    for name in ("K3", "K4", "K5"):
        assert b[name] == pytest.approx(B.matrix_norm(np.abs(w), p), rel=1e-12)
    if p == 2:
        assert b["K3"] > b["K"]


@pytest.mark.parametrize("p", NORMS)
def test_diagonal_network(p):
    rng = np.random.default_rng(10)
    d = rng.normal(size=(4, 5))  # 4 diagonal layers of width 5
    ws = [np.diag(row) for row in d]
    exact = np.abs(d).prod(axis=0).max()
    b = B.lipschitz_bounds(ws, p)
    for name in ("K", "K3", "K4", "K5"):
        assert b[name] == pytest.approx(exact, rel=1e-12)
    assert b["K_star"] == pytest.approx(np.abs(d).max(axis=1).prod(), rel=1e-12)
    assert b["K"] <= b["K1"] * TOL <= b["K_star"] * TOL**2


SLIDES_HAT_TABLE = {  # l: (K*, K1, K3, K4 = L) from the slides, l-inf norm; L = 2 - 2^-l
    1: (3.0, 2.0, 2.0),
    2: (9.0, 3.53125, 3.0),
    3: (33.0, 6.92187, 4.0),
    4: (129.0, 14.42877, 5.0),
    5: (513.0, 30.75637, 6.0),
    6: (2049.0, 66.00227, 7.0),
}


@pytest.mark.parametrize("representation", ["slides", "ramp"])
def test_hat_network_values(representation):
    for depth in range(1, 7):
        ws, bs = B.hat_network(depth, representation)
        xs = np.linspace(0.0, 1.0, 2**depth + 1)
        f = np.array([B.relu_forward(B.validate_weights(ws), bs, [x])[0][0] for x in xs])
        np.testing.assert_allclose(f, xs**2, atol=1e-12)  # interpolates x^2 at k/2^l
        L = B.exact_lipschitz_1d(ws, bs)
        assert L == pytest.approx(2 - 2.0**-depth, rel=1e-12)
        for norm in (1, np.inf):
            b = B.lipschitz_bounds(ws, norm, max_patterns=2**18)
            assert b["K"] == pytest.approx(L, rel=1e-12)
            assert b["K5"] == pytest.approx(b["K4"], rel=1e-12)  # scalar in and out
            assert L <= b["K4"] * TOL <= min(b["K1"], b["K3"]) * TOL**2
    # Lower bound returns the exact value for scalar input and output.
    ws, bs = B.hat_network(4, representation)
    assert B.lipschitz_lower_bound(ws, 1, bs) == pytest.approx(1.9375)


def test_hat_network_reproduces_the_slides_table():
    """Every entry of the slides' "optimality of K4" table, in l-inf (slides round K1 to 5 decimals)."""
    for depth, (k_star, k1, k3) in SLIDES_HAT_TABLE.items():
        b = B.lipschitz_bounds(B.hat_network(depth)[0], np.inf, max_patterns=2**18)
        L = 2 - 2.0**-depth
        assert b["K_star"] == pytest.approx(k_star, rel=1e-12)
        assert b["K1"] == pytest.approx(k1, abs=1e-5)
        assert b["K3"] == pytest.approx(k3, rel=1e-12)
        assert b["K4"] == pytest.approx(L, rel=1e-12) and b["K"] == pytest.approx(L, rel=1e-12)


def test_ramp_representation_gives_a_looser_k4():
    b = B.lipschitz_bounds(B.hat_network(2, "ramp")[0], 1)
    assert b["K4"] == pytest.approx(2.125) and b["K"] == pytest.approx(1.75)
    assert B.lipschitz_bounds(B.hat_network(1, "ramp")[0], 1) == pytest.approx(
        {"K_star": 3.0, "K": 1.5, "K1": 2.0, "K3": 2.0, "K4": 1.5, "K5": 1.5}
    )
    with pytest.raises(ValueError, match="representation"):
        B.hat_network(2, "sawtooth")


def test_exact_1d_against_dense_sampling():
    rng = np.random.default_rng(11)
    ws = [rng.normal(size=(6, 1)), rng.normal(size=(5, 6)), rng.normal(size=(1, 5))]
    bs = [rng.normal(size=w.shape[0]) for w in ws]
    L = B.exact_lipschitz_1d(ws, bs)
    xs = np.linspace(-20, 20, 40001)
    sampled = max(abs(B.jacobian_at(ws, bs, [x])[0, 0]) for x in xs[::7])
    assert sampled <= L * TOL
    assert L <= B.k_exact(ws, 1) * TOL


def test_deep_networks_use_only_the_polynomial_bounds(monkeypatch):
    """35 layers: K and K4 (exponential) are skipped, K1 and K5 need no enumeration of chains."""
    from lipjax.bounds import upper

    def enumerating(*args, **kwargs):
        raise AssertionError("an exponential enumeration was started")

    monkeypatch.setattr(upper, "chains", enumerating)
    monkeypatch.setattr(upper, "pattern_products", enumerating)
    rng = np.random.default_rng(12)
    ws = [rng.normal(size=(32, 32)) / 6 for _ in range(35)]
    b = B.lipschitz_bounds(ws, math.inf)
    assert set(b) == {"K_star", "K1", "K3", "K5"}  # 2^34 subsets: out of reach
    assert b["K5"] <= min(b["K1"], b["K3"]) * TOL <= b["K_star"] * TOL**2


# ---------------------------------------------------------------------------
# Invalid input.
# ---------------------------------------------------------------------------


def test_invalid_inputs():
    w0, w1 = np.ones((6, 3)), np.ones((2, 7))
    with pytest.raises(ValueError, match="W1 has 7 columns but W0 has 6 rows"):
        B.lipschitz_bounds([w0, w1], 1)
    with pytest.raises(ValueError, match="non-finite"):
        B.k_star([np.array([[1.0, np.nan]])], 1)
    with pytest.raises(ValueError, match="non-finite"):
        B.k1([np.array([[np.inf]])], 1)
    with pytest.raises(ValueError, match="2-D"):
        B.k3([np.ones(3)], 1)
    with pytest.raises(ValueError, match="empty"):
        B.k1([], 1)
    with pytest.raises(TypeError, match="list"):
        B.k1(np.ones((3, 3)), 1)
    with pytest.raises(ValueError, match="unsupported norm"):
        B.k1([np.ones((2, 2))], 3)
    big = [np.ones((20, 4)), np.ones((1, 20))]
    with pytest.raises(ValueError, match="max_patterns"):
        B.k_exact(big, 1)
    assert B.k_exact(big, 1, max_patterns=2**20) == pytest.approx(20.0)
    deep = [np.eye(2)] * 20
    with pytest.raises(ValueError, match="max_subsets"):
        B.k4(deep, 1)
    with pytest.raises(ValueError, match="max_subsets"):
        B.k1_bruteforce(deep, 1)


# ---------------------------------------------------------------------------
# Flax networks.
# ---------------------------------------------------------------------------


def test_weights_from_flax_cnn_matches_jacobian():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(3, (3, 3), strides=(2, 2), padding="SAME")(x))
            x = nn.relu(nn.Conv(4, (3, 3), padding="VALID")(x))
            x = x.reshape((x.shape[0], -1))
            return nn.Dense(2)(x)

    model = CNN()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
    ws, bs = B.weights_from_flax(model, variables, (8, 8, 1))
    assert [w.shape for w in ws] == [(48, 64), (16, 48), (2, 16)]
    x = np.random.default_rng(0).normal(size=(8, 8, 1)).astype(np.float32)
    jac = jax.jacfwd(lambda z: model.apply(variables, z[None])[0])(jnp.asarray(x))
    np.testing.assert_allclose(
        B.jacobian_at(ws, bs, x.reshape(-1)), np.asarray(jac).reshape(2, 64), atol=1e-5
    )
    b = B.lipschitz_bounds(ws, math.inf, max_patterns=1)
    assert b["K5"] <= b["K4"] * TOL <= min(b["K1"], b["K3"]) * TOL**2


def test_weights_from_flax_rejects_unsupported():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class WithNorm(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(4)(x))
            x = nn.LayerNorm()(x)
            return nn.Dense(1)(x)

    class WithPool(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(2, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            return nn.Dense(1)(x.reshape((x.shape[0], -1)))

    for model, shape in ((WithNorm(), (3,)), (WithPool(), (4, 4, 1))):
        variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
        with pytest.raises(TypeError, match="(unsupported layer|not a plain chain)"):
            B.weights_from_flax(model, variables, shape)


def test_weights_from_dense_params_transposes():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    model = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(3), nn.relu, nn.Dense(2)])
    variables = model.init(jax.random.PRNGKey(1), jnp.zeros((1, 4)))
    ws = B.weights_from_dense_params(variables)
    assert [w.shape for w in ws] == [(5, 4), (3, 5), (2, 3)]
    ws2, _ = B.weights_from_flax(model, variables, (4,))
    for a, b in zip(ws, ws2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
