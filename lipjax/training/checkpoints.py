"""orbax-checkpoint saves of the train state.

Each checkpoint is ``<workdir>/checkpoints/<step>/`` holding the train state
(params, power-iteration vectors, optimizer state, step) and a JSON record
(epoch, config). orbax writes a checkpoint into a temporary folder and renames
it only once every file is written and flushed, so an interrupted save never
becomes the latest checkpoint: ``latest_step`` only sees finalized ones.
``max_to_keep`` old checkpoints are kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from lipjax.training.state import TrainState


class Checkpointer:
    """Saves and restores :class:`TrainState` under ``<workdir>/checkpoints``."""

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
        step = int(jax.device_get(state.step))
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_as_tree(state)),
                record=ocp.args.JsonSave(record),
            ),
            force=True,
        )
        self.manager.wait_until_finished()
        return step

    def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
        """Restores ``step`` (default: the latest) into the structure of ``template``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_tree(template))
        try:
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()
                ),
            )
        except Exception as err:  # orbax / tensorstore raise many types for damaged files
            raise ValueError(
                f"checkpoint {step} in {self.directory} is corrupt or does not match this "
                f"config's model ({type(err).__name__}: {str(err)[:300]})"
            ) from err
        tree = out["state"]
        state = template.replace(
            step=tree["step"],
            params=tree["params"],
            power_iteration=tree["power_iteration"],
            opt_state=jax.tree.unflatten(
                jax.tree.structure(template.opt_state), jax.tree.leaves(tree["opt_state"])
            ),
        )
        return state, dict(out["record"] or {})

    def read_record(self, step: int | None = None) -> dict[str, Any]:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        out = self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))
        return dict(out["record"] or {})

    def close(self) -> None:
        self.manager.close()


def _as_tree(state: TrainState) -> dict[str, Any]:
    return {
        "step": state.step,
        "params": state.params,
        "power_iteration": state.power_iteration,
        "opt_state": state.opt_state,
    }
