"""Margins, certified radii and certified accuracy of Lipschitz classifiers (l2).

Imports jax only, so an exported model can be certified without any training code.

For an ``L``-Lipschitz network with logits ``f`` and class ``c``:

* multi-class: ``r = (f_c - max_{j != c} f_j) / (sqrt(2) L)``;
* binary single logit (class 1 iff ``f > 0``): ``r = |f| / L``;
* normalised last layer with rows ``w_j`` on a body of constant ``L``:
  ``r = min_{j != c} (f_c - f_j) / (L ||w_c - w_j||)`` (tighter, and sound since
  ``f_c - f_j`` is ``L ||w_c - w_j||``-Lipschitz).

A point is certified at ``eps`` when its radius with respect to its true label
is ``> eps``, which implies the prediction is correct.

Float rounding: when the logits were computed in floating point, ``logit_error``
(a bound ``E`` of ``||f~ - f||_2``, per sample or scalar) is taken off the margin,
so the radius holds for the exact network. A gap ``f_c - f_j`` moves by at most
``||e_c - e_j|| <= sqrt(2) E``:

* multi-class: ``r = (margin - sqrt(2) E) / (sqrt(2) L)``;
* binary: ``r = (|f| - E) / L``;
* normalised head, body error ``E_b`` (``feature_error``) and head rounding ``E``:
  ``r = min_{j != c} (f_c - f_j - ||w_c - w_j|| E_b - sqrt(2) E) / (L ||w_c - w_j||)``.

A radius that the errors make non-positive means "not certified" (also without labels).

References:
  Tsuzuku, Sato, Sugiyama, Lipschitz-margin training, NeurIPS 2018.
  Meunier et al., A dynamical system perspective for Lipschitz neural networks, ICML 2022.
  Singla, Singla, Feizi, Improved deterministic l2 robustness on CIFAR-10 and CIFAR-100, ICLR 2022.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

SQRT2 = 2.0**0.5


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_logits(logits, labels=None) -> jax.Array:
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must be floating point; got dtype {logits.dtype}")
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim not in (1, 2):
        raise ValueError(f"logits must have shape (N, classes) or (N,) for one logit; got {logits.shape}")
    if _is_concrete(logits) and not np.isfinite(np.asarray(logits)).all():
        raise ValueError("logits contain NaN or inf: no certificate can be given")
    if labels is not None:
        labels = jnp.asarray(labels)
        if labels.shape != logits.shape[:1]:
            raise ValueError(f"labels must have shape ({logits.shape[0]},); got {labels.shape}")
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
        if _is_concrete(labels):
            top = 2 if logits.ndim == 1 else logits.shape[1]
            host = np.asarray(labels)
            if host.size and (host.min() < 0 or host.max() >= top):
                raise ValueError(f"labels must lie in [0, {top}); got range [{host.min()}, {host.max()}]")
    return logits


def _check_lipschitz(lipschitz):
    if _is_concrete(lipschitz):
        value = float(lipschitz)
        if not (value > 0 and value < float("inf")):
            raise ValueError(f"lipschitz must be a positive finite number; got {value}")


def predict(logits: jax.Array) -> jax.Array:
    """The class a network predicts: ``argmax_j f_j``, or ``1`` iff ``f > 0`` for a single logit.

    The one prediction rule of lipjax: losses, training, certification, attacks and the
    command line all use it.

    Args:
      logits: ``(N, C)`` with ``C >= 2``, or ``(N,)`` / ``(N, 1)`` for one logit.

    Returns:
      ``(N,)`` int32 predicted classes.
    """
    logits = jnp.asarray(logits)
    if logits.ndim == 1 or logits.shape[-1] == 1:
        return (logits.reshape(logits.shape[0]) > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


@jax.jit
def margins(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``f_y - max_{j != y} f_j`` per sample (negative when misclassified).

    Args:
      logits: shape (N, C), C >= 2.
      labels: shape (N,), integers.
    """
    num_classes = logits.shape[-1]
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, num_classes, dtype=bool), -jnp.inf, logits)
    return own - others.max(axis=-1)


@jax.jit
def _radius(logits, lipschitz, head, labels, logit_error, feature_error):
    if logits.ndim == 1:
        sign = 1.0 if labels is None else 2.0 * labels - 1.0
        return ((jnp.abs(logits) if labels is None else sign * logits) - logit_error) / lipschitz
    if labels is None:
        labels = predict(logits)
    if head is None:
        return (margins(logits, labels) - SQRT2 * logit_error) / (SQRT2 * lipschitz)
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    row_dist = jnp.linalg.norm(head[labels][:, None, :] - head[None, :, :], axis=-1)  # (N, C)
    # f_c - f_j, less what rounding can have moved it by: the body's error through w_c - w_j
    # and the head's own error on the two logits.
    gaps = own - logits - row_dist * feature_error[:, None] - SQRT2 * logit_error[:, None]
    ratio = jnp.where(
        row_dist > 0,
        gaps / (lipschitz * jnp.where(row_dist > 0, row_dist, 1.0)),
        jnp.where(gaps > 0, jnp.inf, jnp.where(gaps < 0, -jnp.inf, 0.0)),
    )
    is_self = jax.nn.one_hot(labels, logits.shape[1], dtype=bool)
    return jnp.where(is_self, jnp.inf, ratio).min(axis=-1)


def _check_error(error, name: str, count: int, dtype) -> jax.Array:
    """A non-negative, finite scalar or ``(N,)`` error bound, broadcast to ``(N,)``.

    A concrete bound is converted to the logits' dtype rounding *up*, so that it stays a bound.
    """
    if _is_concrete(error):
        wide = np.asarray(error, np.float64)
        if not np.all(np.isfinite(wide)) or np.any(wide < 0):
            raise ValueError(f"{name} must be finite and >= 0; got {wide}")
        narrow = wide.astype(dtype)
        error = np.where(narrow < wide, np.nextafter(narrow, np.asarray(np.inf, dtype)), narrow)
    error = jnp.asarray(error, dtype)
    if error.ndim > 1 or (error.ndim == 1 and error.shape[0] != count):
        raise ValueError(f"{name} must be a scalar or have shape ({count},); got {error.shape}")
    return jnp.broadcast_to(error, (count,))


def certified_radius(
    logits: jax.Array,
    lipschitz: float | jax.Array,
    head: jax.Array | None = None,
    labels: jax.Array | None = None,
    logit_error: float | jax.Array = 0.0,
    feature_error: float | jax.Array = 0.0,
) -> jax.Array:
    """Certified l2 radius of each sample (formulas in the module docstring).

    Args:
      logits: (N, C) for C classes, or (N,) / (N, 1) for a binary single logit.
      lipschitz: l2 Lipschitz constant of the network producing ``logits``; when
        ``head`` is given, of the body producing the head's input (passing the
        whole network's constant is also sound, only looser).
      head: optional (C, d) rows ``w_j`` of a normalised last layer.
      labels: optional (N,) true labels. Without them the radius is that of the
        predicted class (>= 0 without rounding errors); with them it is negative for
        misclassified points.
      logit_error: scalar or (N,) bound of ``||f~ - f||_2``, the rounding error of the
        logits (with ``head``: of the head's own rounding); 0 trusts the logits as exact.
      feature_error: scalar or (N,) bound of the rounding error of the head's input
        (only with ``head``).

    Returns:
      (N,) radii: no perturbation of l2 norm below the radius changes the class (of the
      exact network, when the errors bound the rounding).
    """
    logits = _check_logits(logits, labels)
    _check_lipschitz(lipschitz)
    if head is not None:
        head = jnp.asarray(head)
        if logits.ndim != 2 or head.ndim != 2 or head.shape[0] != logits.shape[1]:
            raise ValueError(
                f"head must have shape (classes, features) with {logits.shape[-1]} classes; got {head.shape}"
            )
    if labels is not None:
        labels = jnp.asarray(labels)
    count = logits.shape[0]
    logit_error = _check_error(logit_error, "logit_error", count, logits.dtype)
    feature_error = _check_error(feature_error, "feature_error", count, logits.dtype)
    if head is None and _is_concrete(feature_error) and bool(np.any(np.asarray(feature_error) > 0)):
        raise ValueError("feature_error is the error of a normalised head's input: give head too")
    return _radius(logits, jnp.asarray(lipschitz, logits.dtype), head, labels, logit_error, feature_error)


def certified_accuracy(
    logits: jax.Array,
    labels: jax.Array,
    eps: float | Sequence[float],
    lipschitz: float | jax.Array,
    head: jax.Array | None = None,
    logit_error: float | jax.Array = 0.0,
    feature_error: float | jax.Array = 0.0,
) -> jax.Array:
    """Fraction of samples whose radius w.r.t. the true label is ``> eps``, per eps.

    ``eps = 0`` gives the clean accuracy (strict ties count as errors) when the errors
    are 0; rounding errors (see :func:`certified_radius`) only lower every fraction.

    Returns:
      Array of shape ``(len(eps),)`` (or a scalar for a scalar ``eps``).
    """
    radii = certified_radius(
        logits, lipschitz, head=head, labels=labels, logit_error=logit_error, feature_error=feature_error
    )
    eps_array = jnp.asarray(eps, radii.dtype)
    if _is_concrete(eps_array) and bool(np.any(np.asarray(eps_array) < 0)):
        raise ValueError(f"eps must be >= 0; got {eps}")
    return jnp.mean(radii[None, :] > jnp.atleast_1d(eps_array)[:, None], axis=-1).reshape(eps_array.shape)
