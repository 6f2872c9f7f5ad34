"""The trainer's step against a plain PyTorch loop, PReLU nets against ReLU nets, timed side by side.

Variants of one step (a fixed batch of random images, SGD momentum 0.9, weight decay 5e-4, lr 0):

    trainer/prelu  `train_step.TrainStep` as `rectifiers train` runs it: channels_last, the precision
                   `train.amp = auto` picks, `rectifiers.PReLU`, no weight decay on the slopes
    trainer/relu   the same with ReLU
    plain/prelu    what a user writes by hand: float32, NCHW, eager, `torch.nn.PReLU`
    plain/relu     the same with ReLU

All variants are timed in `interleave.time_interleaved`'s order, so load from other processes hits
them alike, on the wall clock and on the process's CPU clock (which counts only the work).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rectifiers.amp import AmpChoice, model_step_probe, resolve_amp
from rectifiers.checkpoint.inference import swap_to_torch_modules
from rectifiers.complexity import complexity
from rectifiers.interleave import paired_ratio, time_interleaved
from rectifiers.models import create_model
from rectifiers.optim import param_groups
from rectifiers.runtime import keep_freed_memory
from rectifiers.train_step import READ_EVERY, StepTally, TrainStep

__all__ = ["VARIANTS", "StepCase", "check_variants", "make_step", "step_precision", "time_steps"]

VARIANTS = ("trainer/prelu", "trainer/relu", "plain/prelu", "plain/relu")
# The steps repeat one batch, on which a real learning rate drives a deep net to a non-finite loss;
# an SGD step does the same work at any learning rate.
_LR = 0.0


@dataclass(frozen=True)
class StepCase:
    """One model at one input size, built as `create_model(model, stem="small", ...)`."""

    label: str  # e.g. "net14 mnist"
    model: str  # registry name
    width: float  # conv channel multiplier
    fc_width: int  # units of fc1 and fc2
    in_chans: int
    size: int  # input side in pixels (the training crop)
    classes: int = 10
    batch: int = 128

    def build(self, act: str, init: bool = True) -> nn.Module:
        return create_model(
            self.model,
            stem="small",
            width=self.width,
            fc_width=self.fc_width,
            num_classes=self.classes,
            in_chans=self.in_chans,
            act=act,
            init=init,
        )


def _model_and_batch(case: StepCase, act: str, fmt: torch.memory_format) -> tuple[nn.Module, Tensor, Tensor]:
    """The case's model, the same weights at every call, and a fixed random batch, both in ``fmt``."""
    torch.manual_seed(0)
    model = case.build(act).to(memory_format=fmt)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(case.batch, case.in_chans, case.size, case.size, generator=gen).to(memory_format=fmt)
    return model, images, torch.randint(0, case.classes, (case.batch,), generator=gen)


def check_variants(variants: Sequence[str]) -> None:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")


def make_step(
    case: StepCase, variant: str, precision: str | AmpChoice = "auto", compiled: bool = False
) -> Callable[[], None]:
    """A closure that runs one training step of ``variant`` (see the module docstring) on a fixed batch.
    ``precision``, the trainer variants' autocast: a `train.amp` mode ("auto", "off", "bf16") or the
    `step_precision` already chosen; ``compiled``: their model under `torch.compile`, as `train.compile`
    runs it (compiled at the first call)."""
    check_variants([variant])
    kind, _, act = variant.partition("/")
    if kind == "plain":
        model, images, targets = _model_and_batch(case, act, torch.contiguous_format)
        if act == "prelu":
            swap_to_torch_modules(model)
        opt = torch.optim.SGD(model.parameters(), lr=_LR, momentum=0.9, weight_decay=5e-4)

        def plain_step() -> None:
            loss = F.cross_entropy(model(images), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return plain_step

    model, images, targets = _model_and_batch(case, act, torch.channels_last)
    if not isinstance(precision, AmpChoice):
        precision = step_precision(case, variant, precision, model)
    amp = precision.dtype
    step = TrainStep(
        torch.compile(model) if compiled else model,
        torch.optim.SGD(param_groups(model, 5e-4), lr=_LR, momentum=0.9),
        torch.amp.GradScaler("cpu", enabled=amp is torch.float16),  # as the trainer builds it
        amp,
        StepTally(torch.device("cpu")),
    )

    def trainer_step() -> None:
        step(images, targets)
        if len(step.tally) >= READ_EVERY and step.tally.read(False, lambda t: t).first_non_finite is not None:
            raise RuntimeError("non-finite loss in the timed step")

    return trainer_step


def step_precision(
    case: StepCase, variant: str, amp_mode: str = "auto", model: nn.Module | None = None
) -> AmpChoice:
    """The precision ``variant`` runs in: float32 for the plain loop; for the trainer, what
    `train.amp = amp_mode` picks for this model (on a CPU without AMX "auto" times the model, once:
    the answer is cached)."""
    kind, _, act = variant.partition("/")
    if kind == "plain":
        return AmpChoice(None, "the plain loop runs in float32")
    model = model if model is not None else _model_and_batch(case, act, torch.channels_last)[0]
    shape = (case.batch, case.in_chans, case.size, case.size)
    probe = model_step_probe(model, model.build_args, shape, case.classes, torch.channels_last)
    return resolve_amp(amp_mode, torch.device("cpu"), deterministic=False, probe=probe)


def time_steps(
    cases: Sequence[StepCase],
    variants: Sequence[str] = VARIANTS,
    repeats: int = 10,
    warmup: int = 2,
    peaks: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Time one training step of every variant on every case, interleaved; one row per (case, variant).

    Each row: median and min wall ms, median CPU ms, images/s (wall and per CPU second), GFLOP/s and,
    given ``peaks`` ({"float32": GFLOP/s, "bfloat16": GFLOP/s}), the fraction of the peak of the
    variant's compute dtype. The trainer/prelu row also carries paired ratios of times, each on wall
    and CPU time: ``prelu_vs_relu`` (trainer/relu ÷ trainer/prelu: ≥ 1 means PReLU is as fast),
    ``vs_plain`` (plain/prelu ÷ trainer/prelu) and ``vs_plain_relu`` (plain/relu ÷ trainer/prelu).
    Freed memory is kept for reuse first, as `rectifiers train` does (process-wide: the plain loop too).
    """
    check_variants(variants)
    keep_freed_memory()
    rows: list[dict[str, Any]] = []
    for case in cases:
        # Chosen once: on a busy CPU the calibration is not cached and a second one may answer otherwise.
        precisions = {v: step_precision(case, v) for v in variants}
        steps = {v: make_step(case, v, precisions[v]) for v in variants}
        wall, cpu = time_interleaved(steps, repeats, warmup)
        with torch.device("meta"):
            net = case.build("relu", init=False)
        # ≈ 6 × multiply-adds: forward (2 flops per multiply-add), input and weight gradients
        flops = 6.0 * complexity(net, (case.in_chans, case.size, case.size)).total_macs * case.batch
        for v in variants:
            w, c = statistics.median(wall[v]), statistics.median(cpu[v])
            precision = precisions[v]
            dtype = precision.name
            row: dict[str, Any] = {
                "case": case.label,
                "variant": v,
                "wall_ms": w * 1e3,
                "min_wall_ms": min(wall[v]) * 1e3,
                "cpu_ms": c * 1e3,
                "images_per_s": case.batch / w,
                "images_per_cpu_s": case.batch / c,
                "gflops": flops / w / 1e9,
                "compute_dtype": dtype,
                "precision_reason": precision.reason,
                "peak_fraction": (flops / w / 1e9) / peaks[dtype] if peaks and dtype in peaks else None,
                "repeats": repeats,
                **asdict(case),
            }
            if v == "trainer/prelu":
                for key, other in (
                    ("prelu_vs_relu", "trainer/relu"),
                    ("vs_plain", "plain/prelu"),
                    ("vs_plain_relu", "plain/relu"),
                ):
                    if other in wall:
                        row[key] = paired_ratio(wall[other], wall[v])
                        row[f"{key}_cpu"] = paired_ratio(cpu[other], cpu[v])
            rows.append(row)
    return rows
