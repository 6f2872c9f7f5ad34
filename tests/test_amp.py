"""`train.amp = "auto"`: bf16 with AMX, else the faster of bf16 and fp32 as measured on the run's model,
cached per machine and model shape (`rectifiers.amp`). Timings here are made up: no wall-time asserts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from rectifiers import amp
from rectifiers.amp import AmpChoice, StepProbe, choose_from_timings, resolve_amp
from rectifiers.config import load_config
from rectifiers.engine import fit
from rectifiers.machine import CpuIsa

CPU = torch.device("cpu")
NO_AMX = CpuIsa(amx=False, avx512_bf16=True, max_isa=None)


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"),
    [
        ([1.0, 1.0, 1.0], [0.5, 0.5, 0.6], torch.bfloat16),  # bf16 twice as fast
        ([1.0, 1.0, 1.0], [1.6, 1.5, 1.4], None),  # bf16 slower: the no-AMX case
        ([1.0, 1.0, 1.0], [0.98, 0.97, 0.99], None),  # within the noise: fp32, the more accurate
        ([1.0, 2.0, 1.0], [0.8, 1.6, 0.8], torch.bfloat16),  # a slow pair shifts no paired ratio
    ],
)
def test_choice_from_timings(fp32: list[float], bf16: list[float], expected: torch.dtype | None) -> None:
    choice = choose_from_timings(fp32, bf16)
    assert choice.dtype is expected
    assert "bf16 step measured" in choice.reason


def test_choice_needs_paired_timings() -> None:
    with pytest.raises(ValueError, match="paired timings"):
        choose_from_timings([1.0, 1.0], [1.0])


@pytest.mark.parametrize(
    ("isa", "usable"),
    [
        (CpuIsa(amx=True, avx512_bf16=True, max_isa=None), True),
        (CpuIsa(amx=True, avx512_bf16=True, max_isa="AVX512_CORE_AMX"), True),
        (CpuIsa(amx=True, avx512_bf16=True, max_isa="AVX512_CORE_BF16"), False),
        (CpuIsa(amx=True, avx512_bf16=True, max_isa="AVX2"), False),
        (NO_AMX, False),
    ],
)
def test_amx_counts_only_where_onednn_may_use_it(isa: CpuIsa, usable: bool) -> None:
    assert isa.amx_usable is usable


class _Measured:
    """Stands in for `measure_step_pair`: returns set timings and counts its calls."""

    def __init__(self, fp32: list[float], bf16: list[float]) -> None:
        self.timings, self.calls = (fp32, bf16), 0

    def __call__(self, step: object) -> tuple[list[float], list[float]]:
        self.calls += 1
        return self.timings


def _probe(width: float = 0.5) -> StepProbe:
    return StepProbe(
        key={"name": "net14", "width": width, "crop": 32, "batch": 128}, make_step=lambda: lambda dtype: None
    )


@pytest.fixture
def no_amx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A CPU with AVX512_BF16 and no AMX, the cache in tmp_path; returns the cache root."""
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))
    monkeypatch.setattr(amp, "cpu_isa", lambda: NO_AMX)
    monkeypatch.setattr(amp, "onednn_has_bf16", lambda: True)
    return tmp_path


def test_auto_without_amx_measures_and_keeps_the_faster(monkeypatch: pytest.MonkeyPatch, no_amx: Path):
    slow_bf16 = _Measured([0.4, 0.4, 0.4], [0.7, 0.6, 0.7])
    monkeypatch.setattr(amp, "measure_step_pair", slow_bf16)
    choice = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert choice.dtype is None and slow_bf16.calls == 1
    assert "no AMX" in choice.reason and "0.57x" in choice.reason  # the measured speed ratio


def test_calibration_is_cached_per_model_shape_and_isa_cap(monkeypatch: pytest.MonkeyPatch, no_amx: Path):
    fast_bf16 = _Measured([1.0, 1.0], [0.5, 0.5])
    monkeypatch.setattr(amp, "measure_step_pair", fast_bf16)
    first = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert first.dtype is torch.bfloat16 and fast_bf16.calls == 1
    (saved,) = (no_amx / "amp").glob("*.json")
    assert json.loads(saved.read_text())["bf16_s"] == [0.5, 0.5]

    again = resolve_amp("auto", CPU, deterministic=False, probe=_probe())  # hit
    assert again.dtype is torch.bfloat16 and fast_bf16.calls == 1 and "measured earlier" in again.reason

    resolve_amp("auto", CPU, deterministic=False, probe=_probe(width=0.25))  # another model: miss
    assert fast_bf16.calls == 2
    monkeypatch.setattr(amp, "cpu_isa", lambda: CpuIsa(amx=False, avx512_bf16=True, max_isa="AVX512_CORE"))
    resolve_amp("auto", CPU, deterministic=False, probe=_probe())  # another oneDNN cap: miss
    assert fast_bf16.calls == 3

    saved.write_text("{not json")  # a torn file is measured again, not an error
    monkeypatch.setattr(amp, "cpu_isa", lambda: NO_AMX)
    assert resolve_amp("auto", CPU, deterministic=False, probe=_probe()).dtype is torch.bfloat16
    assert fast_bf16.calls == 4


def test_amx_takes_bf16_without_measuring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))
    monkeypatch.setattr(amp, "cpu_isa", lambda: CpuIsa(amx=True, avx512_bf16=True, max_isa=None))
    never = _Measured([], [])
    monkeypatch.setattr(amp, "measure_step_pair", never)
    choice = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert choice.dtype is torch.bfloat16 and "AMX" in choice.reason and never.calls == 0


def test_no_onednn_bf16_is_float32_without_measuring(monkeypatch: pytest.MonkeyPatch, no_amx: Path):
    monkeypatch.setattr(amp, "onednn_has_bf16", lambda: False)
    never = _Measured([], [])
    monkeypatch.setattr(amp, "measure_step_pair", never)
    choice = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert choice.dtype is None and "no bf16 kernels" in choice.reason and never.calls == 0


@pytest.mark.parametrize(
    ("mode", "deterministic", "dtype"),
    [("off", False, None), ("auto", True, None), ("bf16", False, torch.bfloat16)],
)
def test_explicit_modes_say_so(mode: str, deterministic: bool, dtype: torch.dtype | None) -> None:
    choice = resolve_amp(mode, CPU, deterministic=deterministic)
    assert choice.dtype is dtype and choice.reason


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="train.amp = 'fp16' needs a CUDA device"):
        resolve_amp("fp16", CPU, deterministic=False)


def test_the_measurement_leaves_the_rng_and_the_model_alone() -> None:
    from rectifiers.models import create_model

    model = create_model("net14", stem="small", width=0.125, fc_width=16, num_classes=4, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = amp.model_step_probe(model, {"name": "net14"}, (8, 1, 16, 16), num_classes=4)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    fp32_s, bf16_s = amp.measure_step_pair(probe.make_step(), budget_s=0.0)
    assert len(fp32_s) == len(bf16_s) == 2  # min_pairs, once the budget is spent
    assert torch.equal(torch.rand(3), expected)  # dropout's draws did not move the global stream
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_the_run_records_its_precision_and_why(monkeypatch: pytest.MonkeyPatch, no_amx: Path) -> None:
    monkeypatch.setattr(amp, "measure_step_pair", _Measured([0.4, 0.4], [0.7, 0.7]))
    out = no_amx / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    header = (out / "run.txt").read_text()
    assert "precision: float32 (no AMX; bf16 step measured 0.57x fp32's speed" in header, header
    assert AmpChoice(None, "").name == "float32" and AmpChoice(torch.bfloat16, "").name == "bfloat16"


class _Pressure:
    """Stands in for `machine.cpu_wait_us`: the microseconds other tasks waited for a core, advancing
    by ``per_call`` at each read."""

    def __init__(self, per_call: int | None) -> None:
        self.per_call, self.total = per_call, 0

    def __call__(self) -> int | None:
        if self.per_call is None:
            return None
        self.total += self.per_call
        return self.total


@pytest.mark.parametrize(("waited_us", "cached"), [(0, True), (None, True), (10**9, False)])
def test_a_calibration_made_on_a_busy_cpu_is_not_cached(
    monkeypatch: pytest.MonkeyPatch, no_amx: Path, waited_us: int | None, cached: bool
) -> None:
    # A run that calibrated while other jobs held the cores once cached "bf16 0.93x" for a model
    # whose bf16 step is 1.5x faster, and every later run of that shape trained in float32.
    monkeypatch.setattr(amp, "cpu_wait_us", _Pressure(waited_us))
    measured = _Measured([1.0, 1.0], [0.5, 0.5])
    monkeypatch.setattr(amp, "measure_step_pair", measured)
    choice = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert choice.dtype is torch.bfloat16  # this run still uses what it measured
    assert bool(list((no_amx / "amp").glob("*.json"))) is cached
    if not cached:
        assert "busy" in choice.reason and "not cached" in choice.reason, choice.reason
        resolve_amp("auto", CPU, deterministic=False, probe=_probe())
        assert measured.calls == 2  # the next run measures again


def test_a_calibration_cached_before_the_busy_check_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, no_amx: Path
) -> None:
    # Entries written before the busy check may hold a reading made on a loaded machine (this one's
    # cache said bf16 0.85x for a model whose bf16 step is 1.8x faster): they are not trusted.
    current = amp._CALIBRATION_VERSION
    monkeypatch.setattr(amp, "cpu_wait_us", _Pressure(0))
    monkeypatch.setattr(amp, "_CALIBRATION_VERSION", 2)  # the version before the check
    monkeypatch.setattr(amp, "measure_step_pair", _Measured([0.5, 0.5], [1.0, 1.0]))  # fp32 faster
    resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    monkeypatch.setattr(amp, "_CALIBRATION_VERSION", current)
    measured = _Measured([1.0, 1.0], [0.5, 0.5])
    monkeypatch.setattr(amp, "measure_step_pair", measured)
    choice = resolve_amp("auto", CPU, deterministic=False, probe=_probe())
    assert measured.calls == 1 and choice.dtype is torch.bfloat16
    saved = [json.loads(p.read_text()) for p in (no_amx / "amp").glob("*.json")]
    assert [e["busy_share"] for e in saved if e["key"]["version"] == current] == [0.0]


def test_config_json_records_the_precision_chosen_and_why(monkeypatch: pytest.MonkeyPatch, no_amx: Path):
    monkeypatch.setattr(amp, "measure_step_pair", _Measured([0.4, 0.4], [0.2, 0.2]))
    out = no_amx / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["amp"] == "auto"
    assert saved["resolved"]["precision"] == "bfloat16"
    assert "bf16 step measured 2.00x" in saved["resolved"]["precision_reason"]
