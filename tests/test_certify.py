"""Certified radii and accuracy against brute force."""

import itertools

import numpy as np
import pytest

from lipjax import certify


def brute_radius(logits, lipschitz, labels=None, head=None):
    out = []
    for i, row in enumerate(logits):
        c = int(np.argmax(row)) if labels is None else int(labels[i])
        others = [j for j in range(len(row)) if j != c]
        if head is None:
            out.append((row[c] - max(row[j] for j in others)) / (np.sqrt(2) * lipschitz))
        else:
            ratios = []
            for j in others:
                dist = np.linalg.norm(head[c] - head[j])
                gap = row[c] - row[j]
                ratios.append(gap / (lipschitz * dist) if dist > 0 else np.sign(gap) * np.inf)
            out.append(min(ratios))
    return np.array(out)


def test_multiclass_radius_matches_brute_force(rng):
    logits = rng.normal(size=(200, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=200)
    for lip in [0.5, 1.0, 3.0]:
        np.testing.assert_allclose(
            certify.certified_radius(logits, lip), brute_radius(logits, lip), rtol=1e-5
        )
        np.testing.assert_allclose(
            certify.certified_radius(logits, lip, labels=labels), brute_radius(logits, lip, labels), rtol=1e-5
        )


def test_ties_give_zero_radius_and_are_not_certified():
    logits = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0], [3.0, 1.0, 3.0]], np.float32)
    np.testing.assert_array_equal(certify.certified_radius(logits, 1.0), [0.0, 0.0, 0.0])
    labels = np.array([0, 1, 2])
    np.testing.assert_array_equal(certify.certified_accuracy(logits, labels, [0.0, 0.1], 1.0), [0.0, 0.0])


def test_lln_radius_matches_brute_force(rng):
    head = rng.normal(size=(5, 8))
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    features = rng.normal(size=(100, 8))
    logits = (features @ head.T).astype(np.float32)
    labels = rng.integers(0, 5, size=100)
    for lip in [1.0, 2.5]:
        got = certify.certified_radius(logits, lip, head=head, labels=labels)
        np.testing.assert_allclose(got, brute_radius(logits, lip, labels, head), rtol=1e-4, atol=1e-6)


def test_lln_radius_is_at_least_the_generic_one(rng):
    """||w_y - w_j|| <= sqrt(2) for unit rows... only when rows are unit; then LLN is tighter."""
    head = rng.normal(size=(4, 6))
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    logits = (rng.normal(size=(50, 6)) @ head.T).astype(np.float32)
    generic = np.asarray(certify.certified_radius(logits, 1.0 * np.linalg.norm(head, 2)))
    lln = np.asarray(certify.certified_radius(logits, 1.0, head=head))
    assert np.all(lln >= generic - 1e-6)


def test_lln_radius_is_sound_on_a_linear_model(rng):
    """For f(x) = W x (W with unit rows, body = identity), the radius is the exact distance to
    the nearest decision boundary: no point strictly inside changes class, one just past it does."""
    head = rng.normal(size=(3, 2))
    head /= np.linalg.norm(head, axis=1, keepdims=True)
    x = rng.normal(size=(40, 2))
    logits = x @ head.T
    radii = np.asarray(certify.certified_radius(logits.astype(np.float32), 1.0, head=head))
    angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for i in range(40):
        c = int(logits[i].argmax())
        # distance to each boundary {f_c = f_j}, computed here from the geometry
        dist = {
            j: (logits[i, c] - logits[i, j]) / np.linalg.norm(head[c] - head[j]) for j in range(3) if j != c
        }
        nearest = min(dist, key=dist.get)
        assert radii[i] == pytest.approx(dist[nearest], rel=1e-4, abs=1e-6)
        normal = (head[c] - head[nearest]) / np.linalg.norm(head[c] - head[nearest])
        past = x[i] - 1.001 * radii[i] * normal
        assert past @ head[nearest] > past @ head[c]  # class changed just past r
        inside = x[i] + 0.999 * radii[i] * directions
        assert np.all((inside @ head.T).argmax(1) == c)  # unchanged everywhere inside r


def test_binary_radius():
    logits = np.array([2.0, -1.0, 0.0, 0.5], np.float32)
    np.testing.assert_allclose(certify.certified_radius(logits, 2.0), [1.0, 0.5, 0.0, 0.25])
    labels = np.array([1, 1, 0, 0])
    np.testing.assert_allclose(
        certify.certified_radius(logits[:, None], 2.0, labels=labels), [1, -0.5, 0, -0.25]
    )
    np.testing.assert_allclose(certify.certified_accuracy(logits, labels, [0.0, 0.6], 2.0), [0.25, 0.25])


def test_certified_accuracy_matches_counting(rng):
    logits = rng.normal(size=(300, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=300)
    eps = [0.0, 0.1, 0.3]
    radii = brute_radius(logits, 1.3, labels)
    expected = [np.mean(radii > e) for e in eps]
    np.testing.assert_allclose(certify.certified_accuracy(logits, labels, eps, 1.3), expected)
    clean = np.mean((logits.argmax(1) == labels) & (radii > 0))
    assert float(certify.certified_accuracy(logits, labels, 0.0, 1.3)) == pytest.approx(clean)


def test_ten_thousand_samples_in_one_call(rng):
    logits = rng.normal(size=(10_000, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=10_000)
    acc = certify.certified_accuracy(logits, labels, [36 / 255, 72 / 255, 108 / 255], 1.0)
    assert acc.shape == (3,) and np.all(np.diff(np.asarray(acc)) <= 0)


def test_margins():
    logits = np.array([[3.0, 1.0, 2.0]], np.float32)
    for label, expected in zip(range(3), [1.0, -2.0, -1.0], strict=True):
        assert float(certify.margins(logits, np.array([label]))[0]) == expected


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: certify.certified_radius(np.array([[np.nan, 1.0]]), 1.0), ValueError, "NaN"),
        (lambda: certify.certified_radius(np.ones((2, 3)), 0.0), ValueError, "positive"),
        (lambda: certify.certified_radius(np.ones((2, 3)), np.inf), ValueError, "positive"),
        (lambda: certify.certified_radius(np.ones((2, 3, 4)), 1.0), ValueError, "shape"),
        (lambda: certify.certified_radius(np.ones((2, 3), np.int32), 1.0), TypeError, "floating"),
        (
            lambda: certify.certified_radius(np.ones((2, 3)), 1.0, labels=np.array([0, 3])),
            ValueError,
            "labels",
        ),
        (
            lambda: certify.certified_radius(np.ones((2, 3)), 1.0, labels=np.array([0.0, 1.0])),
            TypeError,
            "integers",
        ),
        (lambda: certify.certified_radius(np.ones((2, 3)), 1.0, head=np.ones((4, 2))), ValueError, "head"),
        (lambda: certify.certified_accuracy(np.ones((2, 3)), np.array([0, 1]), -0.1, 1.0), ValueError, "eps"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("with_head", [False, True])
def test_every_label_vector_small(rng, with_head):
    """All 3^4 label vectors of 4 points and 3 classes: the radius with respect to a label is
    positive exactly when that label is the strict argmax, and equals the brute-force one."""
    head = rng.normal(size=(3, 5)) if with_head else None
    logits = rng.normal(size=(4, 3)).astype(np.float32)
    pred = logits.argmax(1)
    seen = 0
    for labels in itertools.product(range(3), repeat=4):
        lab = np.array(labels)
        r = np.asarray(certify.certified_radius(logits, 1.0, head=head, labels=lab))
        np.testing.assert_array_equal(r > 0, pred == lab)
        np.testing.assert_allclose(r, brute_radius(logits, 1.0, lab, head), rtol=1e-5, atol=1e-6)
        acc = float(certify.certified_accuracy(logits, lab, 0.0, 1.0, head=head))
        assert acc == pytest.approx(np.mean(pred == lab))
        seen += 1
    assert seen == 81
