"""A run directory's checkpoints: which one a run continues from, and writing the next one.

The trainer's policy on top of `store`'s mechanics:

- resuming: `train.resume` = "auto" continues from the newest checkpoint that loads, a path from that
  file, "" starts fresh but refuses a directory that already holds checkpoints. `RESUME_POLICY` says,
  per config field, what a resume may change; the data is compared by content, not by spec string.
- saving: an epoch's checkpoint goes to `checkpoints/`, then best.pt and last.pt link to it and only
  the newest `keep_last` stay; a mid-epoch checkpoint replaces last.pt alone. A failed write raises
  `CheckpointWriteError`, naming the earlier checkpoint that is still intact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rectifiers import distributed
from rectifiers.checkpoint.store import (
    CheckpointError,
    epoch_checkpoint_name,
    find_resumable,
    link_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    resume_candidates,
    save_checkpoint,
    saved_config,
)
from rectifiers.config import RunConfig, flatten
from rectifiers.run_log import position


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. ENOSPC); the earlier checkpoints are untouched."""


def load_resume_state(config: RunConfig, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint `config.train.resume` asks for and its state; None for a fresh run.

    `say` receives the console messages ("resuming from ...", "no usable checkpoint ..."). Raises
    ValueError for a fresh run in a directory holding checkpoints and for a checkpoint whose MUST_MATCH
    fields differ, CheckpointError for one that lacks what a resume needs.
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
    where = position(*_resume_point(state))
    say(f"resuming from {path} {where}")
    for key, (saved, new) in resume_overrides(config, state).items():
        say(f"{key} = {new!r} replaces the checkpoint's {saved!r}")
    return path, state


def agree_on_resume_state(
    config: RunConfig, say: Callable[[str], None], ctx: distributed.DistContext
) -> tuple[Path, dict[str, Any]] | None:
    """`load_resume_state` decided by rank 0 alone and obeyed by every rank.

    Ranks choosing for themselves could resume at different points (a node that does not see the run
    directory starts at 0) and hang at the first mismatched collective. The other ranks load rank 0's
    choice and check they read the same state; any rank that cannot raises on every rank, naming it.
    A mid-epoch state saved by another number of processes is refused (its per-rank random streams and
    partial sums belong to that number).
    """
    decision: dict[str, Any] | None = None
    found, refusal = None, None
    if ctx.is_main:
        try:
            found = load_resume_state(config, say)
            if found is not None:
                path, state = found
                _check_world_size(state, path, ctx.world_size)
                decision = {"path": str(path), "point": _resume_point(state)}
        except (ValueError, FileNotFoundError) as err:
            refusal = err
            decision = {"refused": f"{type(err).__name__}: {err}"}
    decision = distributed.broadcast_object(decision)
    if refusal is not None:
        raise refusal
    if decision is None:
        return None
    if "refused" in decision:  # rank 0 raises it itself
        raise ValueError(f"rank 0 refused the resume: {decision['refused']}")
    problem = None
    if not ctx.is_main:
        found, problem = _load_chosen(Path(decision["path"]), decision["point"])
    problems = distributed.all_gather_objects(problem)
    failed = [
        f"rank {rank} cannot load the checkpoint rank 0 resumes from ({text})"
        for rank, text in enumerate(problems)
        if text is not None
    ]
    if failed:
        raise CheckpointError(
            f"{'; '.join(failed)}; every process must read the same run directory "
            f"({config.train.out}): put it on storage that every node shares"
        )
    return found


def _resume_point(state: dict[str, Any]) -> list[int]:
    return [int(state["epoch"]), int(state.get("batch", 0)), int(state["step"])]


def _load_chosen(path: Path, point: list[int]) -> tuple[tuple[Path, dict[str, Any]] | None, str | None]:
    try:
        state = load_checkpoint(path)
    except (OSError, CheckpointError) as err:
        return None, str(err)
    if _resume_point(state) != point:
        return None, (f"{path} here holds epoch/batch/step {_resume_point(state)}, rank 0's holds {point}")
    return (path, state), None


def _check_world_size(state: dict[str, Any], path: Path, world_size: int) -> None:
    saved = int(state.get("world_size") or len(state.get("rng") or []) or world_size)
    batch = int(state.get("batch", 0))
    if batch == 0 or saved == world_size:
        return
    epoch_ends = [p for p in resume_candidates(path.parent) if p.parent.name == "checkpoints"]
    alternative = f", or from the epoch-end checkpoint {epoch_ends[0]} with any number" if epoch_ends else ""
    raise ValueError(
        f"{path} was saved in the middle of epoch {int(state['epoch']) + 1} (batch {batch}) by {saved} "
        f"process(es) and this run has {world_size}: that epoch continues exactly only with the same "
        f"number; resume with {saved} process(es){alternative}"
    )


def save_run_checkpoint(
    state: dict[str, Any], run_dir: Path, *, best: bool, mid_epoch: bool, keep_last: int
) -> None:
    """Write the trainer's `state` into `run_dir` (see the module docstring for where it goes).

    Raises CheckpointWriteError (with the errno of the failure) when any write fails.
    """
    try:
        if mid_epoch:  # the kept history is of whole epochs
            save_checkpoint(state, run_dir / "last.pt")
            return
        name = epoch_checkpoint_name(state["epoch"], state["step"])
        path = save_checkpoint(state, run_dir / "checkpoints" / name)
        # best.pt before last.pt: a crash between the two resumes from the older last.pt, which redoes
        # this epoch and links best.pt again; the other order could leave best.pt stale for good.
        if best:
            link_checkpoint(path, run_dir / "best.pt")
        link_checkpoint(path, run_dir / "last.pt")
        prune_checkpoints(run_dir, keep_last)
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


# How each config field may differ between a checkpoint and the run that continues from it.
MUST_MATCH = "must match"  # the saved weights, optimizer state and random streams belong to it
BY_CONTENT = "same content"  # the data: same classes, channels and split sizes, wherever it now lives
OVERRIDE = "override"  # a new value replaces the saved optimizer/scheduler value after loading
FREE = "free"  # how or where the run executes, logs and saves; the maths stays the same


def _fields(section: str, names: str, policy: str) -> dict[str, str]:
    return {f"{section}.{name}": policy for name in names.split()}


RESUME_POLICY: dict[str, str] = {
    "data.spec": BY_CONTENT,
    **_fields("data", "crop scale_min scale_max eval_resize flip pca_std mean divide_std", MUST_MATCH),
    **_fields("data", "raw_pixels val_fraction", MUST_MATCH),
    "data.workers": FREE,
    **_fields("model", "name act stem width fc_width dropout depths spp_levels", MUST_MATCH),
    **_fields("init", "scheme mode a std fc_std", MUST_MATCH),
    # The parameter groups and the scheduler's kind shape the saved state itself.
    **_fields("optim", "decay_bias schedule", MUST_MATCH),
    **_fields("optim", "lr momentum weight_decay milestones factor patience min_lr", OVERRIDE),
    # The per-rank batch, the shuffles and the augmentation draws follow from these two.
    **_fields("train", "batch_size seed", MUST_MATCH),
    # The same computation at another precision, on other kernels or hardware: a resume may move
    # to a machine that needs another setting.
    **_fields("train", "deterministic device amp channels_last compile", FREE),
    **_fields("train", "epochs out resume keep_last save_every max_steps quiet tensorboard", FREE),
}

# Where an override lives once the saved state is loaded: keys of every optimizer param group, and
# keys of the scheduler's state (only those its kind has). The values come from an optimizer and a
# scheduler freshly built from the resuming run's config.
OVERRIDE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "optim.lr": (("lr", "initial_lr"), ("base_lrs", "_last_lr")),
    "optim.momentum": (("momentum",), ()),
    "optim.weight_decay": (("weight_decay",), ()),
    "optim.milestones": ((), ("milestones",)),  # the ones already passed do not come back
    "optim.factor": ((), ("factor", "gamma")),
    "optim.patience": ((), ("patience",)),
    "optim.min_lr": ((), ("min_lrs", "default_min_lr")),
}


def resume_overrides(config: RunConfig, state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The OVERRIDE fields whose value differs from the checkpoint's: {field: (saved, new)}."""
    return _changed(config, state, Path("checkpoint"), OVERRIDE)


def _changed(config: RunConfig, state: dict[str, Any], path: Path, policy: str) -> dict[str, tuple[Any, Any]]:
    """The fields of `policy` whose value in `config` differs from the checkpoint's: {field: (saved, new)}."""
    saved, current = flatten(saved_config(state, path).to_dict()), flatten(config.to_dict())
    fields = [key for key, rule in RESUME_POLICY.items() if rule == policy]
    return {key: (saved[key], current[key]) for key in fields if saved[key] != current[key]}


def apply_overrides(
    fields: list[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    fresh_groups: list[dict[str, Any]],
    fresh_scheduler: dict[str, Any] | None,
) -> None:
    """Set the `fields` (OVERRIDE fields) on a loaded optimizer/scheduler from their fresh values."""
    for key in fields:
        group_keys, scheduler_keys = OVERRIDE_KEYS[key]
        for group, fresh in zip(optimizer.param_groups, fresh_groups, strict=True):
            group.update({k: fresh[k] for k in group_keys if k in fresh})
        if scheduler is not None and fresh_scheduler is not None:
            loaded = scheduler.state_dict()
            loaded.update({k: fresh_scheduler[k] for k in scheduler_keys if k in fresh_scheduler})
            scheduler.load_state_dict(loaded)


def check_same_data(
    state: dict[str, Any], path: Path, classes: list[str], sizes: dict[str, int], channels: int
) -> None:
    """data.spec is compared by content: a data set moved or named differently still resumes."""
    problems = []
    if list(state["classes"]) != list(classes):
        problems.append(f"classes {_short(state['classes'])} there, {_short(classes)} here")
    saved_channels = state["model_args"].get("in_chans")
    if saved_channels is not None and saved_channels != channels:
        problems.append(f"{saved_channels} channel(s) there, {channels} here")
    saved_sizes = state.get("data_sizes")  # absent from checkpoints of earlier versions
    if saved_sizes is not None and dict(saved_sizes) != sizes:
        problems.append(f"split sizes {dict(saved_sizes)} there, {sizes} here")
    if problems:
        raise ValueError(
            f"{path} was trained on other data (data.spec): {'; '.join(problems)}; resume on the same "
            "data set (it may have moved) or start a new run"
        )


def _check_same_run(config: RunConfig, state: dict[str, Any], path: Path) -> None:
    """Refuse a change of any MUST_MATCH field, naming each with both values."""
    changed = _changed(config, state, path, MUST_MATCH).items()
    differ = [f"{key} ({saved!r} there, {new!r} here)" for key, (saved, new) in changed]
    if differ:
        raise ValueError(
            f"{path} was trained with a different {', '.join(differ)}; these settings define the run "
            "and must match on resume: use the checkpoint's values or start a new run"
        )


def _short(names: list[str]) -> str:
    names = list(names)
    return f"[{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}] ({len(names)})"
