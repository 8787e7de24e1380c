"""The audit on small trained models of every layer type: no certificate may be broken.

Each model is trained on a separable two-class image problem until a good share of
the points is certified, exported, certified for the exact network (float rounding
accounted for) and attacked inside every certified radius with PGD (margin and
cross-entropy losses, random restarts). A violation would be a wrong certificate.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lipjax import audit, export, losses
from lipjax import layers as L

SHAPE = (4, 4, 2)
POINTS = 96

FAMILY = {
    "cpl": lambda: [L.Repeat(L.ConvexPotentialConv(4), 2)],
    "sll": lambda: [L.SLLConv(4), L.SLLConv(4)],
    "aol": lambda: [L.AOLConv(4), L.MaxMin(), L.AOLConv(4)],
    "cayley": lambda: [L.CayleyConv(4), L.MaxMin()],
    "soc": lambda: [L.SOCConv(4), L.MaxMin()],
    "spectral": lambda: [L.SpectralConv(4, bjorck_iters=5), L.GroupSort2()],
    "flow": lambda: [L.ConvexPotentialFlow(4, depth=2)],
    "dense": lambda: [
        L.Flatten(),
        L.ConvexPotentialDense(16),
        L.SLLDense(16),
        L.SpectralDense(16),
        L.FullSort(),
    ],
}


def _problem():
    rng = np.random.default_rng(0)
    pattern = rng.choice([-1.0, 1.0], size=SHAPE) / np.sqrt(np.prod(SHAPE))
    y = rng.integers(0, 2, POINTS).astype(np.int32)
    x = 0.5 + (2 * y - 1)[:, None, None, None] * 0.9 * pattern + 0.05 * rng.normal(size=(POINTS, *SHAPE))
    return np.clip(x, 0, 1).astype(np.float32), y


def _train(model, x, y, steps=60):
    variables = model.init(jax.random.key(0), x[:2])
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    optimizer = optax.adam(1e-2)

    @jax.jit
    def step(params, state, opt_state):
        def loss_fn(params):
            logits, updates = model.apply(
                {"params": params, **state}, x, update_stats=True, mutable=[L.POWER_ITERATION]
            )
            return losses.multi_margin_loss(logits, y, margin=0.5).mean(), updates

        (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        changes, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, changes), {**state, **updates}, opt_state

    opt_state = optimizer.init(params)
    for _ in range(steps):
        params, state, opt_state = step(params, state, opt_state)
    return {"params": params, **state}


@pytest.mark.parametrize("layer_type", sorted(FAMILY))
def test_audit_breaks_no_certificate_of_a_trained_model(layer_type):
    body = FAMILY[layer_type]()
    tail = [] if layer_type == "dense" else [L.ScaledAvgPool(2), L.Flatten()]
    model = L.Sequential([L.ChannelPad(4), *body, *tail, L.NormalizedDense(2)])
    x, y = _problem()
    exported = export.export(model, _train(model, jnp.asarray(x), jnp.asarray(y)), SHAPE)
    radii = exported.certify(x, y)
    report = audit.audit_certificates(exported.apply, x, y, radii, steps=30, restarts=2)
    assert report.certified >= POINTS // 4, (
        f"{layer_type}: only {report.certified} certified points to attack"
    )
    assert report.violations == 0, report.summary()
