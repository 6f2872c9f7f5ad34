"""`train.amp`: which autocast dtype a run trains in, and why.

bfloat16 is not faster on every CPU: several times faster than fp32 with AMX, slower where oneDNN
emulates it, in between otherwise (figures: benchmarks/RESULTS.md). So on a CPU "auto" takes bf16 at
once only with usable AMX, float32 where oneDNN has no bf16 kernels, and otherwise times the run's own
model step in both precisions, keeping bf16 only if clearly faster. That measurement is cached per
machine and model shape under `runtime.cache_root()`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rectifiers.atomic_file import replacing
from rectifiers.machine import CpuIsa, cpu_isa, cpu_model, cpu_wait_us, onednn_has_bf16
from rectifiers.runtime import cache_root

__all__ = [
    "MIN_SPEEDUP",
    "AmpChoice",
    "StepProbe",
    "choose_from_timings",
    "measure_step_pair",
    "model_step_probe",
    "resolve_amp",
]

# bf16 must beat fp32 by this factor to be chosen: fp32 is the more accurate of two equal speeds,
# and a choice within 5% of the faster one is as good as the timing noise lets us tell.
MIN_SPEEDUP = 1.05
# Share of the calibration's wall time during which other tasks waited for a core, above which the
# machine was too busy for the timing to stand for later runs: it is used once, not cached.
BUSY_SHARE = 0.2
_CALIBRATION_VERSION = 3  # 2: CPU time; 3: kept only from a CPU no other work kept busy


@dataclass(frozen=True)
class AmpChoice:
    """The precision a run trains in and the reason, as the run header (run.txt) shows them."""

    dtype: torch.dtype | None  # the autocast dtype; None: plain float32
    reason: str  # e.g. "no AMX; bf16 step measured 0.62x fp32's speed, under the 1.05x it needs (...)"

    @property
    def name(self) -> str:
        """'bfloat16', 'float16' or 'float32'."""
        return str(self.dtype or torch.float32).removeprefix("torch.")


@dataclass(frozen=True)
class StepProbe:
    """What the calibration times: one forward + backward of the run's model at its batch shape."""

    key: dict[str, Any]  # the model's shape: its build arguments, parameter shapes, input, memory format
    make_step: Callable[[], Callable[[torch.dtype | None], None]]  # built only when a measurement runs


def model_step_probe(
    model: nn.Module,
    key: dict[str, Any],
    input_shape: tuple[int, int, int, int],
    num_classes: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> StepProbe:
    """A probe whose step runs a copy of ``model`` (the run's weights, gradients and buffers stay as
    they are) on a random batch of ``input_shape`` (N, C, H, W), under autocast to the dtype given
    (None: float32). Forward and backward only: the optimizer step costs the same in both precisions,
    since the weights stay float32. ``key`` names the model (its build arguments, or a user's model
    its class); the probe's key adds its parameter shapes, the input shape and the memory format."""

    def make_step() -> Callable[[torch.dtype | None], None]:
        twin = copy.deepcopy(model).train()
        device = next(twin.parameters()).device
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(input_shape, generator=gen).to(device).contiguous(memory_format=memory_format)
        targets = torch.randint(0, num_classes, (input_shape[0],), generator=gen).to(device)

        def step(dtype: torch.dtype | None) -> None:
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = twin(images)
            F.cross_entropy(logits.float(), targets).backward()
            twin.zero_grad(set_to_none=True)

        return step

    key = {**key, "parameter_shapes": [list(p.shape) for p in model.parameters()]}
    key |= {"input_shape": list(input_shape), "memory_format": str(memory_format)}
    return StepProbe(key=key, make_step=make_step)


def choose_from_timings(fp32_s: list[float], bf16_s: list[float]) -> AmpChoice:
    """bf16 when the median of the paired speed-ups (fp32 time ÷ bf16 time of neighbouring steps) is
    at least `MIN_SPEEDUP`, else float32."""
    if not fp32_s or len(fp32_s) != len(bf16_s):
        raise ValueError(f"need paired timings, got {len(fp32_s)} fp32 and {len(bf16_s)} bf16")
    speedup = statistics.median(f / max(b, 1e-9) for f, b in zip(fp32_s, bf16_s, strict=True))
    measured = f"no AMX; bf16 step measured {speedup:.2f}x fp32's speed"
    if speedup >= MIN_SPEEDUP:
        return AmpChoice(torch.bfloat16, measured)
    return AmpChoice(None, f"{measured}, under the {MIN_SPEEDUP:.2f}x it needs")


def resolve_amp(
    mode: str, device: torch.device, deterministic: bool, probe: StepProbe | None = None
) -> AmpChoice:
    """The autocast dtype for `train.amp` and why.

    "off", and "auto" with deterministic kernels: float32. "bf16"/"fp16": as asked (fp16 only on
    CUDA). "auto" on CUDA: bf16 where the GPU supports it, else fp16. "auto" on a CPU: bf16 with
    usable AMX; float32 where oneDNN has no bf16 kernels; otherwise measured on ``probe`` (the run's
    model), interleaved, with the result cached per machine and model shape. Without a probe,
    float32.
    """
    if mode == "off":
        return AmpChoice(None, "train.amp = off")
    if mode == "auto" and deterministic:
        return AmpChoice(None, "train.deterministic: float32 maths")
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp = 'fp16' needs a CUDA device; use bf16 on CPU")
        return AmpChoice(torch.float16, "train.amp = fp16")
    if mode == "bf16":
        return AmpChoice(torch.bfloat16, "train.amp = bf16")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return AmpChoice(torch.bfloat16, "CUDA with bf16 support")
        return AmpChoice(torch.float16, "CUDA without bf16 support")
    isa = cpu_isa()
    if isa.amx_usable:
        return AmpChoice(torch.bfloat16, f"CPU with AMX ({isa.describe()})")
    if not onednn_has_bf16():
        return AmpChoice(None, f"oneDNN has no bf16 kernels on this CPU ({isa.describe()})")
    if probe is None:
        return AmpChoice(None, f"no AMX and no model to measure bf16 on ({isa.describe()})")
    return _calibrated(probe, isa)


def _calibrated(probe: StepProbe, isa: CpuIsa) -> AmpChoice:
    key = {
        "version": _CALIBRATION_VERSION,
        "cpu": cpu_model(),
        "isa": dataclasses.asdict(isa),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": probe.key,
    }
    text = json.dumps(key, sort_keys=True, default=str)
    path = cache_root() / "amp" / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    try:
        cached = json.loads(path.read_text())
        fp32_s, bf16_s = cached["fp32_s"], cached["bf16_s"]
        choice = choose_from_timings(fp32_s, bf16_s)
        return AmpChoice(choice.dtype, f"{choice.reason} ({isa.describe()}; measured earlier: {path})")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    waited_before, started = cpu_wait_us(), time.perf_counter()
    fp32_s, bf16_s = measure_step_pair(probe.make_step())
    waited_after = cpu_wait_us()
    busy: float | None = None  # the share of the wall time during which other tasks waited for a core
    if waited_before is not None and waited_after is not None:
        busy = (waited_after - waited_before) / 1e6 / max(time.perf_counter() - started, 1e-9)
    choice = choose_from_timings(fp32_s, bf16_s)
    if busy is not None and busy > BUSY_SHARE:
        # Oversubscribed cores slow both precisions by chance amounts (OpenMP threads wait on each
        # other), so the next run measures again rather than inherit this reading.
        return AmpChoice(
            choice.dtype,
            f"{choice.reason} ({isa.describe()}; the CPU was busy with other work {busy:.0%} of the "
            "measurement, so it is not cached)",
        )
    # Several processes (DDP ranks, parallel runs) may calibrate the same key: each writes a whole
    # file. A read-only cache only costs a new measurement next time.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            entry = {"key": key, "fp32_s": fp32_s, "bf16_s": bf16_s, "busy_share": busy}
            tmp.write_text(json.dumps(entry, indent=1))
    return AmpChoice(choice.dtype, f"{choice.reason} ({isa.describe()}; saved to {path})")


def measure_step_pair(
    step: Callable[[torch.dtype | None], None], budget_s: float = 1.0, min_pairs: int = 2, max_pairs: int = 4
) -> tuple[list[float], list[float]]:
    """CPU seconds of this process in fp32 and bf16 calls of ``step``, in neighbouring pairs, after one
    warm-up call of each (oneDNN builds its kernels then): at least ``min_pairs``, more while the
    wall clock stays within ``budget_s``. CPU time, not wall time: on a machine shared with other
    jobs the wall clock also counts the time spent waiting for a core. The order alternates (fp32
    bf16, bf16 fp32, ...) so that neither always follows the other. The global RNG streams (dropout)
    are left as they were."""
    fp32_s: list[float] = []
    bf16_s: list[float] = []
    with torch.random.fork_rng(devices=[]):
        step(None)
        step(torch.bfloat16)
        started = time.perf_counter()
        while len(fp32_s) < max_pairs and (
            len(fp32_s) < min_pairs or time.perf_counter() - started < budget_s
        ):
            order = (None, torch.bfloat16) if len(fp32_s) % 2 == 0 else (torch.bfloat16, None)
            for dtype in order:
                t0 = time.process_time()
                step(dtype)
                (fp32_s if dtype is None else bf16_s).append(time.process_time() - t0)
    return fp32_s, bf16_s
