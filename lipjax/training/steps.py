"""The jit-compiled, data-parallel training and evaluation steps.

Parallelism uses ``jax.jit`` with shardings (no ``pmap``): a 1-D mesh over every
device JAX sees, with the batch split along a ``data`` axis and the train state
replicated. XLA inserts the gradient all-reduce. The same code runs on one CPU,
several GPUs, or a TPU slice.

Multi-host (several processes, e.g. a TPU pod or GPUs over several hosts):
call ``jax.distributed.initialize()`` (arguments from the cluster, or
automatic on TPU/SLURM) before anything else touches JAX. ``jax.devices()``
then lists every device of every host; each process loads its own
``batch_size / jax.process_count()`` slice of the global batch
(:func:`process_slice`), and :func:`shard_batch` assembles the global array with
``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lipjax import losses as losses_lib
from lipjax.data.augment import augment as augment_fn
from lipjax.training.state import POWER_ITERATION, TrainState

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``data`` over ``devices`` (default: all devices)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def process_slice(global_batch: int) -> slice:
    """The rows of a global batch that this process loads."""
    n = jax.process_count()
    if global_batch % n:
        raise ValueError(f"batch size {global_batch} is not divisible by {n} processes")
    local = global_batch // n
    i = jax.process_index()
    return slice(i * local, (i + 1) * local)


def shard_batch(mesh: Mesh, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
    """Places this process's rows of a batch on the mesh, split along ``data``."""
    sharding = data_sharding(mesh)
    return tuple(jax.make_array_from_process_local_data(sharding, np.asarray(a)) for a in arrays)


def to_unit_float(images: jax.Array) -> jax.Array:
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


def make_loss_fn(name: str, kwargs: dict[str, Any], head_fn: Callable | None = None):
    """``loss(logits, labels, params) -> (N,)`` for the named loss.

    ``lln_margin`` needs the rows of the normalized last layer: ``head_fn(params)``
    returns them (``(K, d)``).
    """
    fn = losses_lib.get_loss(name)
    kwargs = dict(kwargs or {})
    if name == "lln_margin":
        if head_fn is None:
            raise ValueError("loss 'lln_margin' needs a model with a normalized last layer")

        def loss(logits, labels, params):
            return fn(logits, labels, head_fn(params), **kwargs)

        return loss
    return lambda logits, labels, params: fn(logits, labels, **kwargs)


def make_train_step(
    model,
    tx: optax.GradientTransformation,
    loss_fn: Callable,
    mesh: Mesh,
    *,
    seed: int = 0,
    augment: bool = False,
    crop_padding: int = 4,
    flip: bool = True,
):
    """Builds ``step(state, images, labels) -> (state, metrics)``, jitted over ``mesh``.

    ``images`` are NHWC ``uint8`` (scaled to [0, 1] inside) or float; the batch
    must be sharded along ``data`` (see :func:`shard_batch`). Augmentation draws
    from ``fold_in(key(seed), state.step)``, so it depends only on the seed and
    the step, not on the device count or on a resume.
    """
    base_key = jax.random.key(seed)

    def step(state: TrainState, images: jax.Array, labels: jax.Array):
        x = to_unit_float(images)
        if augment:
            x = augment_fn(jax.random.fold_in(base_key, state.step), x, crop_padding=crop_padding, flip=flip)

        def objective(params):
            variables = {"params": params}
            if state.power_iteration:
                variables[POWER_ITERATION] = state.power_iteration
            logits, updates = model.apply(variables, x, update_stats=True, mutable=[POWER_ITERATION])
            return jnp.mean(loss_fn(logits, labels, params)), (logits, updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, param_updates),
            power_iteration=updates.get(POWER_ITERATION, state.power_iteration),
            opt_state=opt_state,
        )
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(losses_lib.accuracy(logits, labels)),
            "grad_norm": optax.tree.norm(grads),
        }
        return new_state, metrics

    repl, data = replicated(mesh), data_sharding(mesh)
    return jax.jit(
        step,
        in_shardings=(repl, data, data),
        out_shardings=(repl, repl),
        donate_argnums=(0,),
    )
