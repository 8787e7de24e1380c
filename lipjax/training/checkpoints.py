"""orbax-checkpoint saves of a training run.

Each checkpoint ``<workdir>/checkpoints/<step>/`` holds three items:

* ``variables``: the model variables, ``{"params": ..., "power_iteration": ...}``,
  everything needed to run or export the network;
* ``optimizer``: ``{"step": ..., "opt_state": ...}``, needed only to resume training;
* ``record``: JSON describing the model (``config``, ``image_shape``,
  ``num_classes``) and where the run was (``step``, ``epoch``), so that
  ``lipjax export`` rebuilds the network from the checkpoint alone, without the
  dataset or the optimizer.

orbax writes a checkpoint into a temporary folder and renames it only once every
file is written and flushed, so an interrupted save never becomes the latest
checkpoint: ``latest_step`` only sees finalized ones. ``keep`` checkpoints are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from lipjax.training.state import POWER_ITERATION, TrainState


class Checkpointer:
    """Saves and restores training runs under ``<workdir>/checkpoints``."""

    def __init__(self, workdir: str | Path, keep: int = 3):
        self.directory = (Path(workdir) / "checkpoints").absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(int(keep), 1),
            create=True,
            enable_async_checkpointing=False,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        self.manager.reload()
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        self.manager.reload()
        return list(self.manager.all_steps())

    def save(self, state: TrainState, record: dict[str, Any]) -> int:
        """Saves ``state`` at its step with ``record`` (JSON: config, image_shape, num_classes, ...)."""
        step = int(jax.device_get(state.step))
        self.manager.save(
            step,
            args=ocp.args.Composite(
                variables=ocp.args.StandardSave(_variables_tree(state.params, state.power_iteration)),
                optimizer=ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state}),
                record=ocp.args.JsonSave(record),
            ),
            force=True,
        )
        self.manager.wait_until_finished()
        return step

    def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
        """Restores the whole train state of ``step`` (default: the latest) to resume training.

        Args:
          template: a train state of the same model and optimizer (its values are unused).
          step: the checkpoint; None for the latest.

        Returns:
          ``(state, record)``.
        """
        abstract = {
            "variables": _abstract(_variables_tree(template.params, template.power_iteration)),
            "optimizer": _abstract({"step": template.step, "opt_state": template.opt_state}),
        }
        out, step = self._restore(step, abstract)
        variables, optimizer = out["variables"], out["optimizer"]
        state = template.replace(
            step=optimizer["step"],
            params=variables["params"],
            power_iteration=variables[POWER_ITERATION],
            # orbax returns containers as dicts/lists: put the leaves back into optax's structure
            opt_state=jax.tree.unflatten(
                jax.tree.structure(template.opt_state), jax.tree.leaves(optimizer["opt_state"])
            ),
        )
        return state, out["record"]

    def restore_variables(
        self, abstract_variables: dict[str, Any], step: int | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restores only the model variables of ``step`` (no optimizer state is read).

        Args:
          abstract_variables: the model's variables or their shapes (``jax.eval_shape`` of ``init``).
          step: the checkpoint; None for the latest.

        Returns:
          ``(variables, record)`` with ``variables`` as Flax expects them.
        """
        params = abstract_variables["params"]
        power = abstract_variables.get(POWER_ITERATION, {})
        out, _ = self._restore(step, {"variables": _abstract(_variables_tree(params, power))})
        tree = out["variables"]
        variables = {"params": tree["params"]}
        if tree[POWER_ITERATION]:
            variables[POWER_ITERATION] = tree[POWER_ITERATION]
        return variables, out["record"]

    def read_record(self, step: int | None = None) -> dict[str, Any]:
        """The JSON record of ``step`` (default: the latest)."""
        out, _ = self._restore(step, {})
        return out["record"]

    def _restore(self, step: int | None, abstract: dict[str, Any]) -> tuple[dict[str, Any], int]:
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step not in self.all_steps():
            raise FileNotFoundError(f"no checkpoint {step} in {self.directory}; have {self.all_steps()}")
        args = {name: ocp.args.StandardRestore(tree) for name, tree in abstract.items()}
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore(), **args))
        except Exception as err:  # orbax / tensorstore raise many types for damaged files
            raise ValueError(
                f"checkpoint {step} in {self.directory} is corrupt or does not match this "
                f"config's model ({type(err).__name__}: {str(err)[:300]})"
            ) from err
        out = {name: out[name] for name in (*abstract, "record")}
        out["record"] = dict(out["record"] or {})
        return out, step

    def close(self) -> None:
        self.manager.close()


def _variables_tree(params: Any, power_iteration: Any) -> dict[str, Any]:
    return {"params": params, POWER_ITERATION: power_iteration}


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
