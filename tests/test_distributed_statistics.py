"""Two ranks without a cache folder in common (as on two nodes) compute a file set's normalisation
statistics once: rank 0 computes them and broadcasts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import free_port, tiny_overrides
from own_images import make_photo_folder
from rectifiers.checkpoint.store import load_checkpoint

pytestmark = pytest.mark.distributed

# Each rank gets its own cache folder and writes one line per statistics computation (Normalize._measure).
RANK_SCRIPT = """
import os, sys
from pathlib import Path

out = Path(sys.argv[1])
rank = os.environ["RANK"]
os.environ["RECTIFIERS_CACHE"] = str(out / f"cache-rank{rank}")

from rectifiers.cli import main
from rectifiers.transforms import Normalize

measure = Normalize._measure.__func__


def counted(cls, *args, **kwargs):
    with open(out / f"measured-rank{rank}", "a") as f:
        f.write("1\\n")
    return measure(cls, *args, **kwargs)


Normalize._measure = classmethod(counted)
raise SystemExit(main(sys.argv[2:]))
"""


def test_statistics_of_a_file_set_are_computed_once_over_two_ranks(tmp_path: Path) -> None:
    folder = make_photo_folder(tmp_path / "photos")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    overrides = tiny_overrides(
        tmp_path / "run",
        **{
            "data.spec": f"folder:{folder}",
            "data.crop": "32",
            "data.scale_min": "36",
            "data.scale_max": "40",
            "data.eval_resize": "36",
            "train.batch_size": "8",
            "train.epochs": "1",
            "train.amp": "off",
        },
    )
    args = [f"--set={k}={v}" for k, v in overrides.items()]
    command = [
        sys.executable,
        *("-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1", f"--master-port={free_port()}"),
        str(script),
        str(tmp_path),
        *("train", "--config", "default", *args),
    ]
    # With a cache folder each, both ranks would build the fused PReLU kernel, which the statistics
    # do not involve: ATen's PReLU, same results, no build.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECTIFIERS_NO_KERNEL": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    counts = {
        rank: len((tmp_path / f"measured-rank{rank}").read_text().split())
        if (tmp_path / f"measured-rank{rank}").exists()
        else 0
        for rank in (0, 1)
    }
    assert counts == {0: 1, 1: 0}
    # Rank 0's disk cache is kept; rank 1 had no reason to write one.
    assert list((tmp_path / "cache-rank0").glob("*-stats-*.npz"))
    assert not list((tmp_path / "cache-rank1").glob("*-stats-*.npz"))
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["normalization"]
    assert saved["std"] is not None and torch.all(saved["std"] > 0)
