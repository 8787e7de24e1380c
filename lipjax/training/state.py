"""Train state (params, power-iteration collection, optimizer state) and optimizer."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from lipjax.layers import POWER_ITERATION


@flax.struct.dataclass
class TrainState:
    """Everything a training run carries from one step to the next.

    Attributes:
      step: number of optimizer steps taken.
      params: the ``params`` collection.
      power_iteration: the power-iteration vectors of the normalized layers
        (a separate mutable collection, never differentiated).
      opt_state: optax state.
    """

    step: jax.Array
    params: Any
    power_iteration: Any
    opt_state: Any

    def variables(self) -> dict[str, Any]:
        """The Flax variables ``{"params": ..., POWER_ITERATION: ...}``."""
        out = {"params": self.params}
        if self.power_iteration:
            out[POWER_ITERATION] = self.power_iteration
        return out


def triangular_schedule(learning_rate: float, total_steps: int) -> optax.Schedule:
    """The piecewise triangular schedule of Meunier et al. (2022).

    Linear from 0 to ``learning_rate`` over the first 2/5 of the steps, down to
    ``learning_rate / 20`` at 4/5, then down to 0 at the last step.
    """
    total = max(int(total_steps), 1)
    xs = jnp.array([0.0, 0.4 * total, 0.8 * total, float(total)])
    ys = jnp.array([0.0, learning_rate, learning_rate / 20.0, 0.0])

    def schedule(step):
        return jnp.interp(jnp.asarray(step, jnp.float32), xs, ys)

    return schedule


def make_schedule(name: str, learning_rate: float, total_steps: int) -> optax.Schedule:
    if name == "triangular":
        return triangular_schedule(learning_rate, total_steps)
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "cosine":
        return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1))
    raise ValueError(f"unknown schedule {name!r}; use triangular, constant or cosine")


def make_optimizer(
    name: str,
    learning_rate: float,
    total_steps: int,
    schedule: str = "triangular",
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam (the paper's: lr 1e-3, no weight decay) or AdamW/SGD, with a named schedule.

    Shorthand for :func:`optimizer_with_schedule` over
    ``make_schedule(schedule, learning_rate, total_steps)``.
    """
    lr = make_schedule(schedule, learning_rate, total_steps)
    return optimizer_with_schedule(name, lr, weight_decay)


def optimizer_with_schedule(
    name: str, schedule: optax.Schedule, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """``adam`` (``adamw`` with weight decay) or ``sgd`` (momentum 0.9) driven by ``schedule``.

    Args:
      name: ``"adam"`` or ``"sgd"``.
      schedule: learning rate as a function of the optimizer's step count.
      weight_decay: decoupled weight decay (0: none).
    """
    if name == "adam":
        if weight_decay:
            return optax.adamw(schedule, weight_decay=weight_decay)
        return optax.adam(schedule)
    if name == "sgd":
        return optax.chain(
            optax.add_decayed_weights(weight_decay) if weight_decay else optax.identity(),
            optax.sgd(schedule, momentum=0.9),
        )
    raise ValueError(f"unknown optimizer {name!r}; use adam or sgd")


def create_train_state(
    model, tx: optax.GradientTransformation, rng: jax.Array, sample: jax.Array
) -> TrainState:
    """Initializes the model on ``sample`` (a batch of inputs) and the optimizer."""
    variables = model.init(rng, sample)
    params = variables["params"]
    power = variables.get(POWER_ITERATION, {})
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        power_iteration=power,
        opt_state=tx.init(params),
    )
