"""benchmarks/gpu_check.py skips cleanly where there is no CUDA device (its checks need one)."""

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
