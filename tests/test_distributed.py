"""Two-process gloo runs through the real launcher (torchrun), compared with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import free_port, tiny_overrides
from rectifiers.checkpoint.store import load_checkpoint
from rectifiers.config import flatten, load_config

pytestmark = pytest.mark.distributed

# No dropout: its masks depend on the process layout. Augmentation does not (it is drawn per sample
# position), so one process with batch 32 and two with 16 each see exactly the same inputs. The two
# sum the batch's gradients in a different order; at lr 0.01 this tiny net amplifies that rounding
# about 2.5x per step (measured: 3e-8 after 4 steps, 5e-5 after 12, 9e-4 after 16), at lr 0.002 it
# stays at 3e-8 over the 16 steps, so a mismatch here is a real difference, not chaos. Both in float32:
# bf16 rounding would hide a real difference.
SAME_MATH = {
    "model.dropout": "0.0",
    "train.amp": "off",
    "train.deterministic": "true",
    "train.epochs": "2",
    "optim.lr": "0.002",
}


def _launch(
    out: Path, overrides: dict[str, str], nproc: int, timeout: float = 240
) -> subprocess.CompletedProcess:
    """`rectifiers train` in fresh processes: `nproc` of them under torchrun, or one plain process.
    Both sides get one thread each and no state left behind by earlier tests in this process."""
    # Every field on the command line, so the launched run has exactly the config built here.
    config = load_config(None, overrides).to_dict()
    args = [
        f"--set={k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in flatten(config).items()
    ]
    launcher = ["-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--nnodes=1"]
    launcher.append(f"--master-port={free_port()}")
    command = [
        sys.executable,
        *(launcher if nproc > 1 else []),
        "-m",
        "rectifiers",
        "train",
        "--config",
        "default",
        *args,
    ]
    # oneDNN's AVX-512 float32 convolutions sum a batch of 32 and two of 16 in different orders
    # (1.8e-5 apart after 16 steps on an AVX-512 Xeon without AMX); its AVX2
    # kernels do not (6e-8), which keeps the comparison about DDP on every CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=out.parent)


def _failure(done: subprocess.CompletedProcess) -> str:
    """Both ends of the launcher's stderr: the ranks' own messages come first, torchrun's summary last."""
    err = done.stderr
    return err if len(err) <= 6000 else f"{err[:3000]}\n[...]\n{err[-3000:]}"


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_on_the_same_global_batch(tmp_path: Path):
    for name, nproc in (("single", 1), ("ddp", 2)):
        done = _launch(tmp_path / name, tiny_overrides(tmp_path / name, **SAME_MATH), nproc)
        assert done.returncode == 0, _failure(done)
    one = load_checkpoint(tmp_path / "single" / "last.pt")["model"]
    two = load_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    lines = _metrics(tmp_path / "ddp")
    last = _metrics(tmp_path / "single")[-1]
    # every validation image counted once, and the same metrics as one process
    assert lines[-1]["val_images"] == last["val_images"] == 64
    assert lines[-1]["step"] == last["step"]
    assert abs(lines[-1]["val_loss"] - last["val_loss"]) < 1e-4
    assert lines[-1]["val_top1_err"] == last["val_top1_err"]
    assert abs(lines[-1]["train_loss"] - last["train_loss"]) < 1e-4


def test_uneven_validation_split_counts_each_image_once(tmp_path: Path):
    # 63 validation images over 2 ranks: 32 + 31. The same loss and errors as one process show each
    # image counted once: an image counted twice and another dropped keep the total but not the mean.
    spec = "fake:n=252,size=16,classes=4,channels=1,seed=2"
    runs = {}
    for name, nproc in (("single", 1), ("ddp", 2)):
        extra = {**SAME_MATH, "data.spec": spec, "train.epochs": "1"}
        done = _launch(tmp_path / name, tiny_overrides(tmp_path / name, **extra), nproc)
        assert done.returncode == 0, _failure(done)
        runs[name] = _metrics(tmp_path / name)[-1]
    one, two = runs["single"], runs["ddp"]
    from rectifiers.data import open_dataset

    assert two["val_images"] == one["val_images"] == len(open_dataset(spec, "val")) == 63
    assert abs(two["val_loss"] - one["val_loss"]) < 1e-5
    assert (two["val_top1_err"], two["val_top5_err"]) == (one["val_top1_err"], one["val_top5_err"])


def test_end_process_returns_the_code_outside_a_process_group() -> None:
    from rectifiers.distributed import end_process

    assert end_process(0) == 0 and end_process(3) == 3  # this test process never joined a group


def test_mid_epoch_state_of_another_world_size_is_refused(tmp_path: Path):
    """A mid-epoch checkpoint holds per-rank random streams and partial sums for its number of
    processes; another number could not continue that epoch exactly, so it is refused, clearly."""
    from rectifiers.engine import fit

    out = tmp_path / "run"
    part = fit(load_config(None, tiny_overrides(out, **{"train.max_steps": "3"})))
    assert part["status"] == "max_steps"
    done = _launch(out, tiny_overrides(out, **{"train.resume": "auto"}), nproc=2)
    assert done.returncode != 0
    assert "saved in the middle of epoch 1 (batch 3) by 1 process" in done.stderr, _failure(done)
    assert "resume with 1 process" in done.stderr
