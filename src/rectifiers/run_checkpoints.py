"""A run directory's checkpoints: which one a run continues from, and writing the next one.

`rectifiers.checkpoint` has the mechanics (atomic writes, safe loading, names, links, pruning); this
module has the trainer's policy on top of them:

- resuming: `train.resume` = "auto" continues from the newest checkpoint that loads, a path from that
  file, "" starts fresh but refuses a directory that already holds checkpoints (nothing is overwritten);
  a checkpoint of a run with other data/model/init settings is refused;
- saving: an epoch's checkpoint goes to `checkpoints/`, then best.pt and last.pt link to it and only the
  newest `keep_last` epoch files stay; a mid-epoch checkpoint replaces last.pt alone. A failed write (a
  full disk) raises `CheckpointWriteError`, naming the earlier checkpoint that is still intact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rectifiers.checkpoint import (
    CheckpointError,
    epoch_checkpoint_name,
    find_resumable,
    link_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    resume_candidates,
    save_checkpoint,
)
from rectifiers.config import RunConfig
from rectifiers.run_log import position


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. ENOSPC); the earlier checkpoints are untouched."""


def load_resume_state(config: RunConfig, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint `config.train.resume` asks for and its state; None for a fresh run.

    `say` receives the console messages ("resuming from ...", "no usable checkpoint ..."). Raises
    ValueError for a fresh run in a directory holding checkpoints and for a checkpoint of other
    data/model/init settings, CheckpointError for one that lacks what a resume needs.
    """
    run_dir, resume = Path(config.train.out), config.train.resume
    if resume == "auto":
        found = find_resumable(run_dir)
        if found is None:
            say(f"no usable checkpoint in {run_dir}: starting a fresh run")
            return None
        path, state = found
    elif resume:
        path, state = Path(resume), load_checkpoint(resume)
    else:
        if resume_candidates(run_dir):
            raise ValueError(
                f"{run_dir} already holds checkpoints: pass --resume auto to continue that run, "
                "or choose another --out (nothing was overwritten)"
            )
        return None
    missing = [key for key in ("optimizer", "normalization") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: cannot resume from it, missing keys: {', '.join(missing)}")
    _check_same_run(config, state, path)
    where = position(int(state["epoch"]), int(state.get("batch", 0)), int(state["step"]))
    say(f"resuming from {path} {where}")
    return path, state


def save_run_checkpoint(
    state: dict[str, Any], run_dir: Path, *, best: bool, mid_epoch: bool, keep_last: int
) -> None:
    """Write the trainer's `state` into `run_dir` (see the module docstring for where it goes).

    Raises CheckpointWriteError (with the errno of the failure) when any write fails.
    """
    try:
        _write(state, run_dir, best, mid_epoch, keep_last)
    except OSError as err:  # a full disk, a quota, a vanished mount: stop, keeping what was saved
        kept = resume_candidates(run_dir)
        epoch = state["epoch"] + 1 if mid_epoch else state["epoch"]
        raise CheckpointWriteError(
            err.errno,
            f"{err.strerror or err} (epoch {epoch}, step {state['step']}); "
            + (
                f"the previous checkpoint {kept[0]} is intact: free some space and continue with "
                "--resume auto"
                if kept
                else "no earlier checkpoint exists"
            ),
        ) from err


def _check_same_run(config: RunConfig, state: dict[str, Any], path: Path) -> None:
    """A resume must continue the same model on the same data; schedule lengths may change."""
    try:
        saved = RunConfig.from_dict(state["config"]).to_dict()
    except (ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path}: unusable config in the checkpoint: {err}") from None
    current = config.to_dict()
    differ = [
        f"{section}.{key}"
        for section in ("data", "model", "init")
        for key in current[section]
        if current[section][key] != saved[section][key]
    ]
    if differ:
        raise ValueError(
            f"{path} was trained with a different {', '.join(differ)}; "
            "resume with the same data/model/init settings or start a new run"
        )


def _write(state: dict[str, Any], run_dir: Path, best: bool, mid_epoch: bool, keep_last: int) -> None:
    # Mid-epoch saves go to last.pt only: the kept history is of whole epochs.
    if mid_epoch:
        save_checkpoint(state, run_dir / "last.pt")
        return
    path = save_checkpoint(
        state, run_dir / "checkpoints" / epoch_checkpoint_name(state["epoch"], state["step"])
    )
    # best.pt before last.pt: a crash between the two resumes from the older last.pt, which redoes
    # this epoch and links best.pt again; the other order could leave best.pt stale for good.
    if best:
        link_checkpoint(path, run_dir / "best.pt")
    link_checkpoint(path, run_dir / "last.pt")
    prune_checkpoints(run_dir, max(keep_last, 1))
