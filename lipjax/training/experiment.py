"""An experiment built from a config in one place: model, schedule, optimizer, steps, state.

The training loop, ``lipjax export``, the tests and the benchmarks all call
:func:`build_experiment` (or, for the model alone, :func:`build_model` and
:func:`model_template`), so a config means the same network and optimizer
everywhere.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lipjax.losses import SINGLE_LOGIT_LOSSES
from lipjax.training.state import TrainState, create_train_state, make_schedule, optimizer_with_schedule
from lipjax.training.steps import make_loss_fn, make_train_step


def build_model(cfg: dict[str, Any], num_classes: int):
    """``lipjax.models.<cfg['model']>(num_classes=..., **cfg['model_kwargs'])``.

    ``cfg['model']`` may also be ``"package.module:function"`` for an architecture
    defined elsewhere. A binary task trained with ``hkr`` gets one logit.
    """
    name = cfg["model"]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        factory = getattr(importlib.import_module(module_name), attr, None)
    else:
        from lipjax import models

        factory = getattr(models, name, None)
    if factory is None or not callable(factory):
        raise ValueError(f"unknown model {name!r} (a lipjax.models function or 'module:function')")
    kwargs = dict(cfg["model_kwargs"] or {})
    for key in ("mean", "std"):  # JSON (config.json, checkpoint records) turns tuples into lists
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    out_classes = 1 if num_classes == 2 and cfg["loss"] in SINGLE_LOGIT_LOSSES else num_classes
    if "num_classes" in inspect.signature(factory).parameters:
        kwargs.setdefault("num_classes", out_classes)
    return factory(**kwargs)


def model_template(cfg: dict[str, Any], image_shape: tuple[int, ...], num_classes: int):
    """The model of ``cfg`` and the shapes of its variables, without computing them.

    Returns:
      ``(model, abstract_variables)``: what a checkpoint's model variables are
      restored into (no data, no optimizer).
    """
    model = build_model(cfg, num_classes)
    sample = jnp.zeros((1, *image_shape), jnp.float32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), sample)
    return model, dict(abstract)


def head_fn_for(model) -> Callable | None:
    """A function params -> rows of the normalized last layer, when the model has one."""
    from lipjax.layers import NormalizedDense, Sequential
    from lipjax.layers.spectral import normalize_columns

    if not isinstance(model, Sequential) or not isinstance(model.layers[-1], NormalizedDense):
        return None
    name = f"layers_{len(model.layers) - 1}"
    return lambda params: normalize_columns(params[name]["kernel"]).T


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Everything a config determines before training starts.

    Attributes:
      config: the full config (:data:`lipjax.training.config.DEFAULTS` filled in).
      model: the Flax module.
      image_shape: one input's shape (H, W, C).
      num_classes: classes of the task.
      steps_per_epoch: ``num_train_examples // batch_size``.
      scheduled_steps: ``epochs * steps_per_epoch``: the length of the schedule.
      num_train_steps: where training stops: ``config['num_train_steps']`` when
        set (the schedule still spans ``scheduled_steps``), else ``scheduled_steps``.
      schedule: learning rate at optimizer step ``t`` (the one the optimizer uses).
      optimizer: the optax transformation, with the config's weight decay.
    """

    config: dict[str, Any]
    model: Any
    image_shape: tuple[int, ...]
    num_classes: int
    steps_per_epoch: int
    scheduled_steps: int
    num_train_steps: int
    schedule: optax.Schedule
    optimizer: optax.GradientTransformation

    def init_state(self) -> TrainState:
        """Initial parameters, power-iteration vectors and optimizer state (seeded by the config)."""
        sample = jnp.zeros((1, *self.image_shape), jnp.float32)
        return create_train_state(self.model, self.optimizer, jax.random.key(self.config["seed"]), sample)

    def loss_fn(self) -> Callable:
        return make_loss_fn(self.config["loss"], self.config["loss_kwargs"], head_fn_for(self.model))

    def train_step(self, mesh):
        """The jitted, sharded train step of this experiment (see :func:`make_train_step`)."""
        cfg = self.config
        return make_train_step(
            self.model,
            self.optimizer,
            self.loss_fn(),
            mesh,
            seed=cfg["seed"],
            augment=cfg["augment"],
            crop_padding=cfg["crop_padding"],
            flip=cfg["flip"],
        )


def build_experiment(
    cfg: dict[str, Any], *, num_train_examples: int, image_shape: tuple[int, ...], num_classes: int
) -> Experiment:
    """Builds the :class:`Experiment` of a config for a training set of the given size and shape.

    Raises:
      ValueError: a batch larger than the training set, or ``num_train_steps``
        outside ``[1, epochs * steps_per_epoch]``.
    """
    batch_size = int(cfg["batch_size"])
    steps_per_epoch = int(num_train_examples) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training set ({num_train_examples})")
    scheduled = int(cfg["epochs"]) * steps_per_epoch
    num_train_steps = scheduled if cfg["num_train_steps"] is None else int(cfg["num_train_steps"])
    if not 1 <= num_train_steps <= scheduled:
        raise ValueError(
            f"num_train_steps={cfg['num_train_steps']} must lie in [1, {scheduled}] "
            f"({cfg['epochs']} epochs x {steps_per_epoch} steps)"
        )
    schedule = make_schedule(cfg["schedule"], cfg["learning_rate"], scheduled)
    optimizer = optimizer_with_schedule(cfg["optimizer"], schedule, cfg["weight_decay"])
    return Experiment(
        config=cfg,
        model=build_model(cfg, num_classes),
        image_shape=tuple(int(d) for d in image_shape),
        num_classes=int(num_classes),
        steps_per_epoch=steps_per_epoch,
        scheduled_steps=scheduled,
        num_train_steps=num_train_steps,
        schedule=schedule,
        optimizer=optimizer,
    )
