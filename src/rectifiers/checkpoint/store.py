"""The checkpoint file: its format, atomic writes, loading that never executes code, its names.

A checkpoint is a plain dict (the keys are listed in `rectifiers.checkpoint`) saved with
`torch.save` and read back with `weights_only=True`: tensors, numbers, strings, lists and dicts only,
so a pickle carrying code is refused, not run.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from rectifiers.atomic_file import replacing
from rectifiers.config import RunConfig

FORMAT = "rectifiers/1"
REQUIRED_KEYS = ("format", "model", "epoch", "step", "config", "model_args", "classes")
_EPOCH_FILE = re.compile(r"^epoch_(\d+)_step_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: truncated, corrupt, unsafe, or of another model."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically and durably (`atomic_file.replacing`).

    A crash or a full disk mid-write leaves the previous file at `path` untouched; the temp file is
    removed and the OSError propagates with the path in its message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, durable=True) as tmp, open(tmp, "wb") as handle:
            torch.save(state, handle)
    except OSError as err:
        raise OSError(err.errno, f"could not write checkpoint {path}: {err.strerror or err}") from err
    return path


def link_checkpoint(source: Path, target: Path) -> None:
    """Make `target` name the same bytes as `source` (hard link, else copy), atomically."""
    with replacing(target, durable=True) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            tmp.write_bytes(source.read_bytes())


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a rectifiers checkpoint safely (`weights_only=True`) and check its keys.

    Raises FileNotFoundError for a missing file and CheckpointError, naming the file, for anything
    that is not a complete rectifiers checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (an interrupted write?)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses any global it does not know (a global, a call, a class): that is how a
        # code payload shows up. Its other refusals (an unknown opcode, a string too long) are what
        # garbage bytes give.
        if any(word in str(err).lower() for word in ("global", "unrecognized function", "new object")):
            raise CheckpointError(
                f"{path}: refused to load (not plain tensors/containers): {_unsafe_reason(err)}"
            ) from None
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint: {_unsafe_reason(err)}") from None
    except Exception as err:
        # Garbage makes the weights-only unpickler fail in many ways (IndexError, KeyError,
        # UnicodeDecodeError, EOFError, the zip reader's RuntimeError...); it never runs code, so
        # every failure means the same thing here.
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint: {first_line(err)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a rectifiers checkpoint (holds {type(state).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a rectifiers checkpoint, missing keys: {', '.join(missing)}")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {state['format']!r} (expected {FORMAT})")
    return state


def saved_config(state: dict[str, Any], source: str | Path = "checkpoint") -> RunConfig:
    """The checkpoint's run config, read through `RunConfig.from_dict` (unknown keys and bad values
    are refused there); a CheckpointError naming `source` when it cannot be used."""
    try:
        return RunConfig.from_dict(state["config"])
    except (ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{source}: unusable config in the checkpoint: {err}") from None


def epoch_checkpoint_name(epoch: int, step: int) -> str:
    return f"epoch_{epoch:04d}_step_{step:09d}.pt"


def resume_candidates(run_dir: str | Path) -> list[Path]:
    """Checkpoints of a run directory, newest first: last.pt, then the kept epoch checkpoints."""
    run_dir = Path(run_dir)
    kept = sorted(
        (p for p in (run_dir / "checkpoints").glob("epoch_*.pt") if _EPOCH_FILE.match(p.name)),
        key=lambda p: int(_EPOCH_FILE.match(p.name).group(2)),  # type: ignore[union-attr]
        reverse=True,
    )
    last = run_dir / "last.pt"
    return ([last] if last.is_file() else []) + kept


def find_resumable(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of `run_dir` that loads; corrupt ones are skipped with a warning."""
    for path in resume_candidates(run_dir):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", stacklevel=2)
    return None


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete epoch checkpoints beyond the newest `keep_last` (last.pt and best.pt are links)."""
    kept = [p for p in resume_candidates(run_dir) if p.parent.name == "checkpoints"]
    for old in kept[keep_last:]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


def _unsafe_reason(err: BaseException) -> str:
    """The line of torch's long weights_only message that names the refused object."""
    for line in str(err).splitlines():
        if "Unsupported" in line or "global" in line.lower():
            return line.strip().removeprefix("WeightsUnpickler error: ")
    return first_line(err)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
