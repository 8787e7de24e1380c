"""Empirical l2 attacks: projected gradient descent and a minimal-distance attack.

An attack gives an *upper* bound of a model's robust accuracy; a certificate a
*lower* bound. Their gap shows how tight the certificates are, and an attack
that succeeds inside a certified radius shows a wrong certificate (see
``lipjax audit``).

Every attack takes a pure function ``apply_fn(x) -> logits`` (an exported
model's ``apply``, a closure over Flax variables, ...), so it is independent of
how the model was built. ``apply_fn`` must treat examples independently (no
batch statistics), as every lipjax model does at evaluation.

The attacked quantity is the *attack margin*, negative exactly when the point is
misclassified:

* multi-class logits ``(N, C)``: ``f_y - max_{j != y} f_j``;
* a single logit ``(N,)`` or ``(N, 1)`` (class 1 iff ``f > 0``): ``(2 y - 1) f``.

References:
  Madry et al., Towards deep learning models resistant to adversarial attacks, ICLR 2018.
  Croce and Hein, Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks (the DLR loss), ICML 2020.
  Moosavi-Dezfooli et al., DeepFool, CVPR 2016.
  Serrurier et al., Achieving robustness in classification using optimal transport
  with hinge regularization, CVPR 2021 (``||x - adv(x)|| ~ |f(x)|`` for HKR networks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ApplyFn = Callable[[Array], Array]

LOSSES = ("ce", "margin", "dlr")


def attack_margin(logits: Array, labels: Array) -> Array:
    """Per-example margin of the true class; ``< 0`` means misclassified.

    Args:
      logits: ``(N, C)`` with ``C >= 2``, or ``(N,)`` / ``(N, 1)`` for one logit.
      labels: ``(N,)`` integer labels (``{0, 1}`` for one logit).

    Returns:
      ``(N,)``: ``f_y - max_{j != y} f_j``, or ``(2 y - 1) f`` for one logit.
    """
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.ndim == 1:
        return (2.0 * labels - 1.0).astype(logits.dtype) * logits
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return own - others.max(axis=-1)


def _attack_loss(kind: str, logits: Array, labels: Array) -> Array:
    """Per-example objective that the attack *increases*."""
    margin = attack_margin(logits, labels)
    if kind == "margin":
        return -margin
    single = logits.ndim == 1 or logits.shape[-1] == 1
    if kind == "ce":
        if single:
            return jax.nn.softplus(-margin)  # logistic loss of the signed logit
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
    # DLR: the margin divided by the spread of the top logits, invariant to logit scaling.
    if single or logits.shape[-1] < 3:
        return -margin
    top = jnp.sort(logits, axis=-1)[:, ::-1]
    return -margin / (top[:, 0] - top[:, 2] + 1e-12)


def _norms(v: Array) -> Array:
    return jnp.sqrt(jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=-1))


def _per_example(s: Array, like: Array) -> Array:
    return s.reshape((-1,) + (1,) * (like.ndim - 1))


def _project(delta: Array, eps: Array) -> Array:
    """Scales each example of ``delta`` into the l2 ball of radius ``eps``."""
    norms = _norms(delta)
    scale = jnp.minimum(1.0, eps / jnp.maximum(norms, 1e-30))
    return delta * _per_example(scale, delta)


def _random_in_ball(key: Array, x: Array, eps: Array) -> Array:
    """Uniform samples of the l2 balls of radii ``eps`` around 0, one per example."""
    k_dir, k_rad = jax.random.split(key)
    direction = jax.random.normal(k_dir, x.shape, x.dtype)
    direction = direction / _per_example(jnp.maximum(_norms(direction), 1e-30), x)
    dim = np.prod(x.shape[1:])
    radius = eps * jax.random.uniform(k_rad, eps.shape, x.dtype) ** (1.0 / dim)
    return direction * _per_example(radius, x)


def _clip(x: Array, clip: tuple[float, float] | None) -> Array:
    return x if clip is None else jnp.clip(x, clip[0], clip[1])


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps", "restarts", "loss", "clip", "random_start"))
def _pgd(apply_fn, x, y, eps, step_size, key, steps, restarts, loss, clip, random_start):
    def objective(x_adv):
        logits = apply_fn(x_adv)
        return jnp.sum(_attack_loss(loss, logits, y)), attack_margin(logits, y)

    grad_fn = jax.grad(objective, has_aux=True)

    def keep_best(best, candidate, margin):
        best_x, best_margin = best
        better = margin < best_margin
        return jnp.where(_per_example(better, x), candidate, best_x), jnp.where(better, margin, best_margin)

    def one_restart(best, restart_key):
        start = _random_in_ball(restart_key, x, eps) if random_start else jnp.zeros_like(x)
        x_adv = _clip(x + start, clip)

        def step(_, carry):
            x_adv, best = carry
            grad, margin = grad_fn(x_adv)
            best = keep_best(best, x_adv, margin)
            direction = grad / _per_example(jnp.maximum(_norms(grad), 1e-30), grad)
            moved = x_adv + _per_example(step_size, x) * direction
            return _clip(x + _project(moved - x, eps), clip), best

        x_adv, best = jax.lax.fori_loop(0, steps, step, (x_adv, best))
        return keep_best(best, x_adv, attack_margin(apply_fn(x_adv), y)), None

    initial = (x, attack_margin(apply_fn(x), y))
    (best_x, _), _ = jax.lax.scan(one_restart, initial, jax.random.split(key, restarts))
    return best_x


def _check_inputs(x, y, eps) -> tuple[Array, Array, Array]:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must be floating point; got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis, shape (N, ...); got {x.shape}")
    if not np.isfinite(np.asarray(x)).all():
        raise ValueError("x contains NaN or inf")
    y = jnp.asarray(y)
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"labels must be integers; got dtype {y.dtype}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"labels must have shape ({x.shape[0]},); got {y.shape}")
    eps = jnp.broadcast_to(jnp.asarray(eps, x.dtype), x.shape[:1]) if np.ndim(eps) == 0 else jnp.asarray(eps)
    if eps.shape != x.shape[:1]:
        raise ValueError(
            f"eps must be a scalar or one value per example, shape ({x.shape[0]},); got {eps.shape}"
        )
    host_eps = np.asarray(eps)
    if not np.isfinite(host_eps).all() or (host_eps < 0).any():
        raise ValueError(f"eps must be finite and >= 0; got range [{host_eps.min()}, {host_eps.max()}]")
    return x, y, eps.astype(x.dtype)


def pgd_l2(
    apply_fn: ApplyFn,
    x: Array,
    y: Array,
    eps: float | Array,
    steps: int = 10,
    step_size: float | Array | None = None,
    restarts: int = 1,
    key: Array | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    loss: str = "ce",
    random_start: bool = True,
) -> Array:
    r"""Projected gradient ascent of a loss in the l2 balls of radius ``eps``.

    .. math::
        x_{k+1} = \Pi_{B(x, \epsilon) \cap [a, b]^d}
            \Big(x_k + \alpha \frac{\nabla \ell(x_k)}{\|\nabla \ell(x_k)\|_2}\Big)

    starting from a uniform random point of the ball (``random_start``); the
    returned point of each example is, over every iterate and restart, the one
    with the lowest attack margin (so more steps or restarts never weaken it).
    The defaults are those of Meunier et al.'s Figure 2 (10 steps of
    ``2 eps / 10``, one random start); a stronger, AutoAttack-like setting is
    ``steps=100, restarts=5, loss="dlr"``.

    Args:
      apply_fn: pure function from a batch of inputs to logits; hashable (it is a
        static argument of the compiled attack: pass the same function object to
        reuse the compilation).
      x: ``(N, ...)`` clean inputs, inside ``clip``.
      y: ``(N,)`` integer labels.
      eps: l2 radius, a scalar or one per example.
      steps: gradient steps per restart, ``>= 1``.
      step_size: step length ``alpha`` (scalar or per example); default ``2 eps / steps``.
      restarts: independent random starts, ``>= 1``.
      key: PRNG key for the random starts (default ``jax.random.key(0)``).
      clip: ``(low, high)`` data range to stay in, or None.
      loss: ``"ce"`` (cross-entropy, logistic for one logit), ``"margin"``
        (``-`` attack margin, Carlini-Wagner style) or ``"dlr"`` (margin over
        the spread of the top-3 logits, Croce and Hein).

    Returns:
      ``(N, ...)`` adversarial inputs with ``||x_adv - x||_2 <= eps`` (up to
      float rounding) inside ``clip``.
    """
    x, y, eps = _check_inputs(x, y, eps)
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be >= 1; got steps={steps}, restarts={restarts}")
    if loss not in LOSSES:
        raise ValueError(f"unknown attack loss {loss!r}; choose one of {', '.join(LOSSES)}")
    if clip is not None:
        clip = (float(clip[0]), float(clip[1]))
        if not clip[0] < clip[1]:
            raise ValueError(f"clip must be (low, high) with low < high; got {clip}")
    if step_size is None:
        step_size = 2.0 * eps / steps
    step_size = jnp.broadcast_to(jnp.asarray(step_size, x.dtype), eps.shape)
    key = jax.random.key(0) if key is None else key
    return _pgd(
        apply_fn, x, y, eps, step_size, key, int(steps), int(restarts), loss, clip, bool(random_start)
    )


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps", "bisections", "clip"))
def _min_distance(apply_fn, x, overshoot, steps, bisections, clip):
    def logit(z):
        return apply_fn(z).reshape(z.shape[0])

    sign0 = jnp.sign(logit(x))
    grad_fn = jax.grad(lambda z: jnp.sum(logit(z)))

    def deepfool(_, carry):
        z, found, adv = carry
        f = logit(z)
        g = grad_fn(z)
        flipped = jnp.sign(f) != sign0
        found_now = ~found & flipped
        adv = jnp.where(_per_example(found_now, x), z, adv)
        # Linearised step to the boundary f = 0, a little past it.
        step = -(f / jnp.maximum(_norms(g) ** 2, 1e-30)) * (1.0 + overshoot)
        z = _clip(z + _per_example(step, x) * g, clip)
        return z, found | flipped, adv

    z, found, adv = jax.lax.fori_loop(0, steps, deepfool, (x, jnp.zeros(x.shape[0], bool), x))
    last = jnp.sign(logit(z)) != sign0
    adv = jnp.where(_per_example(~found & last, x), z, adv)
    found = found | last

    # Bisection on the segment [x, adv]: the sign flips somewhere on it. The point returned is
    # the last one evaluated as flipped, not recomputed from ``hi``: near the boundary a
    # recomputation rounded otherwise (another fusion, another backend) can land on the
    # unflipped side.
    def bisect(_, carry):
        lo, hi, flipped_point = carry
        mid = 0.5 * (lo + hi)
        point = x + _per_example(mid, x) * (adv - x)
        flipped = jnp.sign(logit(point)) != sign0
        flipped_point = jnp.where(_per_example(flipped, x), point, flipped_point)
        return jnp.where(flipped, lo, mid), jnp.where(flipped, mid, hi), flipped_point

    ones = jnp.ones(x.shape[0], x.dtype)
    _, _, adv = jax.lax.fori_loop(0, bisections, bisect, (0.0 * ones, ones, adv))
    distance = jnp.where(found, _norms(adv - x), jnp.inf)
    return adv, distance


def min_distance_binary(
    apply_fn: ApplyFn,
    x: Array,
    steps: int = 50,
    overshoot: float = 0.02,
    bisections: int = 20,
    clip: tuple[float, float] | None = None,
) -> tuple[Array, Array]:
    r"""Closest point found on the other side of a single-logit classifier's boundary.

    DeepFool iterations ``z <- z - (1 + o) f(z) \nabla f(z) / ||\nabla f(z)||^2``
    until the sign of ``f`` flips, then a bisection on the segment from ``x`` to
    the first flipped point. The distance is an upper bound of the true
    distance to the boundary; for an ``L``-Lipschitz ``f`` the true distance is
    at least ``|f(x)| / L``, so ``distance * L / |f(x)| >= 1`` always, and
    Serrurier et al. observe a ratio close to 1 for HKR-trained networks.

    Args:
      apply_fn: pure function from ``(N, ...)`` inputs to ``(N,)`` or ``(N, 1)`` logits; hashable.
      x: ``(N, ...)`` inputs.
      steps: DeepFool iterations.
      overshoot: relative overshoot ``o`` of each linearised step.
      bisections: halvings of the final segment.
      clip: optional ``(low, high)`` data range.

    Returns:
      ``(adversarial inputs, l2 distances)``; the distance is ``inf`` where no
      flip was found (and the input is returned unchanged).
    """
    x, _, _ = _check_inputs(x, jnp.zeros(np.shape(x)[:1], jnp.int32), 0.0)
    if steps < 1 or bisections < 0:
        raise ValueError(f"steps must be >= 1 and bisections >= 0; got {steps}, {bisections}")
    if clip is not None:
        clip = (float(clip[0]), float(clip[1]))
    return _min_distance(apply_fn, x, jnp.asarray(overshoot, x.dtype), int(steps), int(bisections), clip)
