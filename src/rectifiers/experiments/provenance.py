"""Which code and which machine made a result: the git revision, the versions and the CPU."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from rectifiers.machine import cpu_isa, cpu_model, versions

_REPO = Path(__file__).resolve().parents[3]


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    """`git ARGS` in this checkout; None where git cannot run."""
    try:
        return subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None


def git_revision() -> dict[str, Any] | None:
    """HEAD's commit and whether tracked files differ from it; None outside a git checkout."""
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    if status is None:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def revision() -> str:
    """`git describe` of this checkout (with "-dirty" for local changes), else the package version."""
    from rectifiers import __version__

    done = _git("describe", "--tags", "--always", "--dirty")
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    return f"rectifiers {__version__}"


def machine() -> dict[str, Any]:
    """The machine a run used: CPU, cores, torch threads, OS, accelerator, and whether the CPU has
    AMX tiles (they speed up bf16 training severalfold, so a wall time means little without it)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["amx"] = cpu_isa().amx
    return info


def metadata() -> dict[str, Any]:
    """Versions, git revision, machine and date: what results.json records beside the numbers."""
    return {
        **versions(),
        "git": git_revision(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
