"""Losses against brute-force formulas (PyTorch semantics, hand-computed values)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lipjax import losses


def _torch_multi_margin(x, y, margin, p):
    # Direct transcription of the torch.nn.MultiMarginLoss documentation.
    out = []
    for xi, yi in zip(x, y, strict=True):
        s = 0.0
        for j in range(len(xi)):
            if j != yi:
                s += max(0.0, margin - xi[yi] + xi[j]) ** p
        out.append(s / len(xi))
    return np.array(out)


@pytest.mark.parametrize("p,margin", [(1, 0.7), (2, 0.7), (1, 2.0)])
def test_multi_margin_matches_pytorch_formula(p, margin):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    y = rng.integers(0, 5, size=7)
    got = losses.multi_margin_loss(jnp.asarray(x), jnp.asarray(y), margin=margin, p=p)
    np.testing.assert_allclose(got, _torch_multi_margin(x, y, margin, p), rtol=1e-5, atol=1e-6)


def test_multi_margin_hand_value():
    # logits (1, 0.5, -1), label 0, margin 0.7: terms max(0,.7-1+.5)=.2, max(0,.7-1-1)=0
    got = losses.multi_margin_loss(jnp.array([[1.0, 0.5, -1.0]]), jnp.array([0]), margin=0.7)
    np.testing.assert_allclose(got, [0.2 / 3], rtol=1e-6)


def test_lln_margin_reduces_to_multi_margin_for_unit_distances():
    # Rows w_j = e_j / sqrt(2): ||w_i - w_j|| = 1 for i != j.
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, size=6))
    head = jnp.eye(4) / jnp.sqrt(2.0)
    np.testing.assert_allclose(
        losses.lln_margin_loss(x, y, head, margin=1.3),
        losses.multi_margin_loss(x, y, margin=1.3),
        rtol=1e-5,
    )


def test_lln_margin_brute_force():
    rng = np.random.default_rng(2)
    head = rng.normal(size=(3, 5))
    z = rng.normal(size=(4, 5))
    logits = z @ head.T
    y = np.array([0, 2, 1, 2])
    expect = []
    for li, yi in zip(logits, y, strict=True):
        s = sum(
            max(0.0, 1.5 - (li[yi] - li[j]) / np.linalg.norm(head[yi] - head[j])) for j in range(3) if j != yi
        )
        expect.append(s / 3)
    got = losses.lln_margin_loss(jnp.asarray(logits), jnp.asarray(y), jnp.asarray(head), 1.5)
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_tau_cross_entropy():
    x = jnp.array([[2.0, 0.0, -1.0]])
    tau = 3.0
    z = tau * np.array([2.0, 0.0, -1.0])
    expect = (np.log(np.exp(z).sum()) - z[0]) / tau
    np.testing.assert_allclose(losses.tau_cross_entropy(x, jnp.array([0]), tau), [expect], rtol=1e-4)


def test_binary_hkr_brute_force():
    f = np.array([0.5, -2.0, 1.5, 0.1, -0.3], np.float32)
    lab = np.array([1, 0, 1, 0, 0])
    alpha, m = 10.0, 1.0
    kr = f[lab == 1].mean() - f[lab == 0].mean()
    y = 2 * lab - 1
    hinge = np.maximum(m - y * f, 0).mean()
    expect = alpha * hinge - kr
    got = losses.hkr_loss(jnp.asarray(f)[:, None], jnp.asarray(lab), alpha, m).mean()
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_binary_cross_entropy_is_the_logistic_loss():
    f = np.array([0.5, -2.0, 30.0, 0.1, -40.0], np.float32)
    lab = np.array([1, 0, 0, 0, 1])
    for tau in (1.0, 4.0):
        z = tau * f.astype(np.float64)  # -log P(label) with P(1) = sigmoid(z), computed stably
        expect = np.where(lab == 1, np.logaddexp(0, -z), np.logaddexp(0, z)) / tau
        got = losses.binary_cross_entropy(jnp.asarray(f)[:, None], jnp.asarray(lab), tau)
        np.testing.assert_allclose(got, expect, rtol=1e-5)
    assert losses.get_loss("binary_cross_entropy") is losses.binary_cross_entropy


def test_multiclass_hkr_is_mean_of_one_vs_rest():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 0])
    per_class = [
        float(losses.hkr_loss(jnp.asarray(x[:, k]), jnp.asarray((y == k).astype(int)), 2.0, 0.5).mean())
        for k in range(3)
    ]
    got = losses.multiclass_hkr_loss(jnp.asarray(x), jnp.asarray(y), 2.0, 0.5).mean()
    np.testing.assert_allclose(got, np.mean(per_class), rtol=1e-5)


def test_losses_are_jittable_and_differentiable():
    x = jnp.ones((4, 3)) * jnp.arange(3.0)
    y = jnp.array([0, 1, 2, 0])
    for name in ("multi_margin", "tau_cross_entropy", "multiclass_hkr"):
        fn = losses.get_loss(name)
        g = jax.jit(jax.grad(lambda z, fn=fn: fn(z, y).mean()))(x)
        assert np.all(np.isfinite(g))
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get_loss("nope")


def test_accuracy_binary_and_multiclass():
    assert float(losses.accuracy(jnp.array([[0.3], [-0.2]]), jnp.array([1, 1])).mean()) == 0.5
    logits = jnp.array(list(itertools.permutations([0.0, 1.0, 2.0])))
    labels = jnp.argmax(logits, -1)
    assert float(losses.accuracy(logits, labels).mean()) == 1.0
