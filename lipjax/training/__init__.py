"""Training: experiments from configs, train state, sharded jit steps, loop, orbax checkpoints, metrics."""

from lipjax.training.checkpoints import Checkpointer
from lipjax.training.config import DEFAULTS, apply_overrides, load_config, make_config
from lipjax.training.evaluation import export_and_certify
from lipjax.training.experiment import Experiment, build_experiment, build_model, model_template
from lipjax.training.loop import (
    NonFiniteLossError,
    WorkdirError,
    experiment_for,
    load_datasets,
    train_and_evaluate,
)
from lipjax.training.state import (
    POWER_ITERATION,
    TrainState,
    create_train_state,
    make_optimizer,
    triangular_schedule,
)
from lipjax.training.steps import make_mesh, make_train_step, shard_batch

__all__ = [
    "DEFAULTS",
    "POWER_ITERATION",
    "Checkpointer",
    "Experiment",
    "NonFiniteLossError",
    "TrainState",
    "WorkdirError",
    "apply_overrides",
    "build_experiment",
    "build_model",
    "create_train_state",
    "experiment_for",
    "export_and_certify",
    "load_config",
    "load_datasets",
    "make_config",
    "make_mesh",
    "make_optimizer",
    "make_train_step",
    "model_template",
    "shard_batch",
    "train_and_evaluate",
    "triangular_schedule",
]
