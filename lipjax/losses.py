"""Losses for 1-Lipschitz classifiers, as optax-style pure functions.

Each function takes ``logits`` and integer ``labels`` and returns the loss of
every example (shape ``(N,)``), like ``optax.softmax_cross_entropy``: take the
mean for a batch loss. Exception: the HKR losses' Kantorovich-Rubinstein term
is a difference of class means over the batch, so their per-example values
only mean something once averaged over the batch they were computed on.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lipjax.certify import predict

Array = jax.Array


def multi_margin_loss(logits: Array, labels: Array, margin: float = 0.7, p: int = 1) -> Array:
    r"""Multi-class margin hinge loss, PyTorch ``multi_margin_loss`` semantics.

    .. math::
        \ell(f, y) = \frac{1}{K} \sum_{j \neq y} \max(0, m - f_y + f_j)^p

    Meunier et al. (2022) train CPL networks with ``p=1`` and ``m=0.7`` on CIFAR.
    For an L-Lipschitz network, a point with every term zero has a margin
    ``f_y - max_j f_j >= m``, hence a certified radius ``>= m / (sqrt(2) L)``.

    Args:
      logits: ``(N, K)`` scores.
      labels: ``(N,)`` integer labels.
      margin: the margin ``m``.
      p: 1 or 2.

    Returns:
      ``(N,)`` per-example losses (``reduction='none'`` in PyTorch).

    References:
      torch.nn.functional.multi_margin_loss; Meunier et al., "A Dynamical
      System Perspective for Lipschitz Neural Networks", ICML 2022, sec. 5.1.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    num_classes = logits.shape[-1]
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    true = jnp.sum(logits * one_hot, axis=-1, keepdims=True)
    terms = jnp.maximum(margin - true + logits, 0.0) ** p
    return jnp.sum(terms * (1.0 - one_hot), axis=-1) / num_classes


def lln_margin_loss(logits: Array, labels: Array, head: Array, margin: float = 0.7, p: int = 1) -> Array:
    r"""Margin hinge loss on the margins a normalized last layer certifies.

    With a last layer of rows ``w_j`` on top of an L-Lipschitz body, the
    certified radius is ``min_{j != y} (f_y - f_j) / (L ||w_y - w_j||)``, so the
    hinge is applied to ``(f_y - f_j) / ||w_y - w_j||`` instead of ``f_y - f_j``:

    .. math::
        \ell(f, y) = \frac{1}{K} \sum_{j \neq y}
            \max\left(0, m - \frac{f_y - f_j}{\|w_y - w_j\|}\right)^p

    Args:
      logits: ``(N, K)`` scores.
      labels: ``(N,)`` integer labels.
      head: ``(K, d)`` rows of the last layer (any bias is already in ``logits``).
      margin: the margin ``m``, in units of input distance times ``L``.
      p: 1 or 2.

    Returns:
      ``(N,)`` per-example losses.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p}")
    num_classes = logits.shape[-1]
    head = head.astype(logits.dtype)
    diff = head[:, None, :] - head[None, :, :]
    dist = jnp.sqrt(jnp.sum(diff * diff, axis=-1) + jnp.eye(num_classes, dtype=logits.dtype))
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    true = jnp.sum(logits * one_hot, axis=-1, keepdims=True)
    scaled = (true - logits) / dist[labels]
    terms = jnp.maximum(margin - scaled, 0.0) ** p
    return jnp.sum(terms * (1.0 - one_hot), axis=-1) / num_classes


def tau_cross_entropy(logits: Array, labels: Array, tau: float = 1.0) -> Array:
    r"""Cross-entropy of temperature-scaled logits, divided by the temperature.

    .. math:: \ell(f, y) = \mathrm{CE}(\tau f, y) / \tau

    Small ``tau`` behaves like a margin hinge (robust, less accurate), large
    ``tau`` like plain cross-entropy (accurate, small margins).

    References:
      Béthune et al., "Pay attention to your loss: understanding misconceptions
      about 1-Lipschitz neural networks", NeurIPS 2022 (deel-lip
      ``TauCategoricalCrossentropy``).
    """
    return optax.softmax_cross_entropy_with_integer_labels(tau * logits, labels) / tau


def _signed(labels: Array) -> Array:
    return 2.0 * labels.astype(jnp.float32) - 1.0


def _kr_weights(signs: Array) -> Array:
    """Per-example weights whose batch mean of ``w * f`` is ``E_+ f - E_- f``."""
    n = signs.shape[0]
    n_pos = jnp.sum(signs > 0, axis=0)
    n_neg = n - n_pos
    return jnp.where(signs > 0, n / jnp.maximum(n_pos, 1), -n / jnp.maximum(n_neg, 1))


def hkr_loss(logits: Array, labels: Array, alpha: float = 10.0, min_margin: float = 1.0) -> Array:
    r"""Binary hinge Kantorovich-Rubinstein loss (Serrurier et al., deel-lip).

    .. math::
        \mathcal{L}(f) = \mathbb{E}_{x \sim P_-}[f(x)] - \mathbb{E}_{x \sim P_+}[f(x)]
            + \alpha\, \mathbb{E}_x \max(0, m - y f(x))

    with ``y = +1`` for label 1 and ``-1`` for label 0; the class is the sign of
    ``f``. The batch mean of the returned values is this loss.

    Args:
      logits: ``(N,)`` or ``(N, 1)`` scores of a single-logit network.
      labels: ``(N,)`` labels in ``{0, 1}``.
      alpha: weight of the hinge term.
      min_margin: the hinge margin ``m``.

    Returns:
      ``(N,)`` per-example terms (only their batch mean is meaningful).

    References:
      Serrurier et al., "Achieving robustness in classification using optimal
      transport with hinge regularization", CVPR 2021.
    """
    f = logits.reshape(logits.shape[0])
    y = _signed(labels.reshape(-1)).astype(f.dtype)
    hinge = jnp.maximum(min_margin - y * f, 0.0)
    return alpha * hinge - _kr_weights(y).astype(f.dtype) * f


def binary_cross_entropy(logits: Array, labels: Array, tau: float = 1.0) -> Array:
    r"""Logistic loss of a single-logit network, temperature-scaled like :func:`tau_cross_entropy`.

    .. math:: \ell(f, y) = \log(1 + e^{-\tau y f}) / \tau, \quad y \in \{-1, +1\}

    Args:
      logits: ``(N,)`` or ``(N, 1)`` scores; the class is the sign of ``f``.
      labels: ``(N,)`` labels in ``{0, 1}``.
      tau: temperature.

    Returns:
      ``(N,)`` per-example losses.

    References:
      deel-lip ``TauBinaryCrossentropy``; Béthune et al., NeurIPS 2022.
    """
    f = logits.reshape(logits.shape[0])
    y = _signed(labels.reshape(-1)).astype(f.dtype)
    return jax.nn.softplus(-tau * y * f) / tau


def multiclass_hkr_loss(logits: Array, labels: Array, alpha: float = 10.0, min_margin: float = 1.0) -> Array:
    r"""Multi-class HKR: the binary HKR loss of each one-vs-rest logit, averaged.

    .. math::
        \mathcal{L}(f) = \frac{1}{K} \sum_k \Big( \mathbb{E}_{y \neq k}[f_k]
            - \mathbb{E}_{y = k}[f_k] + \alpha\, \mathbb{E} \max(0, m - s_k f_k) \Big),
        \quad s_k = \pm 1

    Args:
      logits: ``(N, K)``.
      labels: ``(N,)`` integer labels.
      alpha, min_margin: as in :func:`hkr_loss`.

    Returns:
      ``(N,)`` per-example terms (only their batch mean is meaningful).
    """
    num_classes = logits.shape[-1]
    signs = 2.0 * jax.nn.one_hot(labels, num_classes, dtype=logits.dtype) - 1.0
    hinge = jnp.maximum(min_margin - signs * logits, 0.0)
    kr = _kr_weights(signs).astype(logits.dtype) * logits
    return jnp.mean(alpha * hinge - kr, axis=-1)


def accuracy(logits: Array, labels: Array) -> Array:
    """Per-example correctness (``float``); single-logit networks predict ``f > 0``."""
    return (predict(logits) == labels).astype(jnp.float32)


LOSSES: dict[str, Callable[..., Array]] = {
    "multi_margin": multi_margin_loss,
    "lln_margin": lln_margin_loss,
    "tau_cross_entropy": tau_cross_entropy,
    "hkr": hkr_loss,
    "binary_cross_entropy": binary_cross_entropy,
    "multiclass_hkr": multiclass_hkr_loss,
}


SINGLE_LOGIT_LOSSES = frozenset({"hkr", "binary_cross_entropy"})
"""Losses of binary tasks whose network has one logit (the class is its sign)."""


def get_loss(name: str) -> Callable[..., Array]:
    """The loss function registered under ``name`` (see :data:`LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
