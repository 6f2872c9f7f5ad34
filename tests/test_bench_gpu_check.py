"""benchmarks/gpu_check.py: it skips cleanly without a CUDA device, and its checks, run on a CPU at toy
sizes, read what the CLI writes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script runs its checks")
def test_gpu_check_skips_on_cpu_with_exit_code_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _script(monkeypatch).main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("gpu_check: skipped: no CUDA device") and err == ""


def test_gpu_check_refuses_a_cpu_device(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as stop:
        _script(monkeypatch).main(["--device", "cpu"])
    assert stop.value.code == 2 and "--device must be a CUDA device" in capsys.readouterr().err


def test_every_check_reads_what_the_cli_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks run on a CPU with a toy net and bf16 in place of fp16 (which needs CUDA): each must
    pass and report what it read from the runs' files, so that a renamed key fails here rather than
    in the few minutes a GPU is lent."""
    script = _script(monkeypatch)
    toy = [
        "--config", "cifar10", "--data", "fake:n=32,val=8,size=32,classes=10,channels=3,seed=0",
        "--batch-size", "8", "--set", "model.width=0.125", "--set", "model.fc_width=32", "--quiet",
    ]  # fmt: skip
    checks = script.run_checks(tmp_path, "cpu", big=toy, small=toy, scaled="bf16")
    table = script.format_checks(checks)
    assert all(check.ok for check in checks), table
    details = {check.name: check.detail for check in checks}
    assert details["train bf16"].startswith("bfloat16; ") and details["train bf16"].endswith(" img/s"), table
    assert details["resume exact"] == "bitwise equal after 2 + 3 steps", table
    assert details["eval ten"].startswith("top-1 error ") and details["eval dense"].startswith("top-1 error ")
    assert details["bench prelu"].startswith("rectifiers.prelu fwd+bwd at most "), table
