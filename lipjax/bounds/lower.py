"""Lower bounds of the Lipschitz constant of ReLU networks: exact Jacobians, gradient ascent, 1-D exact."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lipjax.bounds.common import (
    Array,
    Norm,
    matrix_norm,
    parse_norm,
    relu_forward,
    validate_biases,
    validate_weights,
)


def jacobian_at(weights: Sequence[Any], biases: Sequence[Any] | None, x: Any) -> Array:
    """Jacobian ``W_l D_l(x) ... D_1(x) W_0`` of the ReLU network at ``x`` (float64).

    ``D_r(x) = diag(z_r(x) > 0)`` with ``z_r`` the pre-activations. At a point
    where no pre-activation is exactly zero this is the true Jacobian, so its
    norm is a lower bound of ``L``.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      biases: ``[b_0, ..., b_l]`` or None (zeros).
      x: input of size ``a_0``.

    Returns:
      The ``(a_{l+1}, a_0)`` Jacobian.
    """
    ws = validate_weights(weights)
    return relu_forward(ws, validate_biases(ws, biases), x, jacobian=True)[1]


def exact_lipschitz_1d(weights: Sequence[Any], biases: Sequence[Any] | None = None) -> float:
    """Exact Lipschitz constant of a ReLU network ``R -> R``: its largest ``|slope|``.

    The network is piecewise affine on the line. Layer by layer, on each
    interval where the previous layers are affine, the zeros of the next
    pre-activations are added as breakpoints; at the end ``f`` is affine on each
    interval and ``L = max |f'|`` over the intervals (slope from the pattern at
    an interior point). The number of pieces can grow like ``2^l``.

    Args:
      weights: ``[W_0, ..., W_l]`` with ``W_0`` of shape ``(a_1, 1)`` and
        ``W_l`` of shape ``(1, a_l)``.
      biases: ``[b_0, ..., b_l]`` or None (zeros).

    Returns:
      ``L`` in float64 (up to rounding of the breakpoints).
    """
    ws = validate_weights(weights)
    if ws[0].shape[1] != 1 or ws[-1].shape[0] != 1:
        raise ValueError(
            f"exact_lipschitz_1d needs scalar input and output, got {ws[0].shape[1]} inputs "
            f"and {ws[-1].shape[0]} outputs"
        )
    bs = validate_biases(ws, biases)
    breaks: list[float] = []

    def interior_points(pts: list[float]) -> list[float]:
        if not pts:
            return [0.0]
        mids = [pts[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(pts)]
        return mids + [pts[-1] + 1.0]

    for depth in range(len(ws) - 1):
        new = []
        edges = [-math.inf, *breaks, math.inf]
        for k, m in enumerate(interior_points(breaks)):
            lo, hi = edges[k], edges[k + 1]
            # Pre-activation of layer `depth` is affine on (lo, hi): value + slope * (x - m).
            value, slope = relu_forward(ws[: depth + 1], bs[: depth + 1], [m], jacobian=True)
            slope = slope[:, 0]
            nz = slope != 0
            roots = m - value[nz] / slope[nz]
            new.extend(float(r) for r in roots if lo < r < hi)
        breaks = sorted(set(breaks) | set(new))
    slopes = [abs(jacobian_at(ws, bs, [m])[0, 0]) for m in interior_points(breaks)]
    return float(max(slopes))


def lipschitz_lower_bound(
    weights: Sequence[Any],
    norm: Norm,
    biases: Sequence[Any] | None = None,
    *,
    num_starts: int = 64,
    num_steps: int = 100,
    scale: float = 1.0,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> float:
    """Largest Jacobian norm found by gradient ascent from many starting points.

        L >= max_k max( ||f(x_k + d_k) - f(x_k)||_p / ||d_k||_p,
                        ||J(x_k)||_p, ||J(x_k + d_k)||_p ).

    The Jacobian of a ReLU network is piecewise constant, so its norm has no
    useful gradient; instead Adam ascends the secant ratio
    ``||f(x + d) - f(x)||_p / ||d||_p`` (every value of it is ``<= L``) jointly in
    ``x`` and ``d`` from ``num_starts`` random starts (``x ~ N(0, scale^2)``),
    in float32 with JAX, and every visited end point is then re-evaluated
    exactly in float64 (secant ratio and Jacobian norm). For scalar input and
    output use :func:`exact_lipschitz_1d`, which this function returns then.

    Args:
      weights: ``[W_0, ..., W_l]``, each out x in.
      norm: 1, 2 or inf (the same p on input and output).
      biases: ``[b_0, ..., b_l]`` or None (zeros: then ``f`` is positively
        homogeneous and only patterns of cones through 0 occur).
      num_starts: number of random starting pairs.
      num_steps: Adam steps.
      scale: standard deviation of the starting points.
      learning_rate: Adam step size, relative to ``scale``.
      seed: PRNG seed.

    Returns:
      A lower bound of ``L`` (not a certificate of anything).
    """
    import jax
    import jax.numpy as jnp
    import optax

    p = parse_norm(norm)
    ws = validate_weights(weights)
    bs = validate_biases(ws, biases)
    if ws[0].shape[1] == 1 and ws[-1].shape[0] == 1:
        return exact_lipschitz_1d(ws, bs)
    wj = [jnp.asarray(w, jnp.float32) for w in ws]
    bj = [jnp.asarray(b, jnp.float32) for b in bs]

    def net(x):
        for w, b in zip(wj[:-1], bj[:-1], strict=True):
            x = jax.nn.relu(w @ x + b)
        return wj[-1] @ x + bj[-1]

    def vnorm(v):
        if p == 1.0:
            return jnp.sum(jnp.abs(v))
        if p == 2.0:
            return jnp.sqrt(jnp.sum(v * v) + 1e-30)
        return jnp.max(jnp.abs(v))

    def neg_log_ratio(params):
        x, d = params
        return -(jnp.log(vnorm(net(x + d) - net(x)) + 1e-30) - jnp.log(vnorm(d) + 1e-30))

    def loss(params):
        return jnp.sum(jax.vmap(lambda x, d: neg_log_ratio((x, d)))(*params))

    n_in = ws[0].shape[1]
    kx, kd = jax.random.split(jax.random.PRNGKey(seed))
    x0 = scale * jax.random.normal(kx, (num_starts, n_in))
    d0 = 0.1 * scale * jax.random.normal(kd, (num_starts, n_in))
    opt = optax.adam(learning_rate * scale)

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=num_steps)
        return params

    xs, ds = (np.asarray(a, np.float64) for a in run((x0, d0)))
    x0, d0 = np.asarray(x0, np.float64), np.asarray(d0, np.float64)
    best = 0.0
    for x, d in itertools.chain(zip(x0, d0, strict=True), zip(xs, ds, strict=True)):
        for point in (x, x + d):
            best = max(best, matrix_norm(jacobian_at(ws, bs, point), p))
        dn = np.linalg.norm(d, ord=p)
        if dn > 0:
            fx, _ = relu_forward(ws, bs, x)
            fy, _ = relu_forward(ws, bs, x + d)
            best = max(best, float(np.linalg.norm(fy - fx, ord=p) / dn))
    return best
