"""Plain helpers shared by the tests (importable as `helpers`: pyproject puts tests/ on the path)."""

from __future__ import annotations

import socket
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_overrides(out: Path, **extra: str) -> dict[str, str]:
    """A seconds-long run: fake 16-px images, a narrow small-stem net14."""
    values = {
        "data.spec": "fake:n=256,size=16,classes=4,channels=1,seed=1",
        "data.crop": "16",
        "data.scale_min": "16",
        "data.scale_max": "18",
        "data.eval_resize": "16",
        "model.width": "0.125",
        "model.fc_width": "32",
        "init.mode": "fan_in",
        "train.batch_size": "32",
        "train.epochs": "2",
        "train.quiet": "true",
        "train.out": str(out),
    }
    values.update(extra)
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
