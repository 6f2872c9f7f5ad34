"""One optimizer step of the trainer, and the per-step bookkeeping it keeps on the device.

`TrainStep` is the step `engine.fit` runs for every batch; the step benchmark and `reproduce
prelu-cost` time the same object, so what they measure is what trains.

A read back to the host waits for every queued kernel (and under torchrun is a round trip between
ranks), so each step adds its loss and top-1 count into device tensors (`StepTally`) and the trainer
`read`s them in one transfer every few steps and before any save; a non-finite loss is still named
by its own step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rectifiers.metrics import topk_correct

__all__ = ["READ_EVERY", "StepTally", "TallyReading", "TrainStep"]

# Steps between reads (a host sync, and under torchrun one all-reduce): a stop request is answered
# within this many steps.
READ_EVERY = 8


@dataclass(frozen=True)
class TallyReading:
    """What `StepTally.read` found in the steps since the previous read."""

    first_non_finite: int | None  # index among those steps of the first non-finite loss on any rank
    value: float  # this rank's loss at that step (nan when none was bad)
    stop: bool  # a stop was asked for on some rank
    sums: torch.Tensor  # this rank's (loss × n, top-1 correct, n) over those steps, float64 on the CPU


class StepTally:
    """Loss and top-1 sums of the steps since the last `read`, on ``device``, and their losses."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss × n, top-1 correct, n
        self.losses: list[torch.Tensor] = []  # one 0-d tensor per step, not yet checked

    def __len__(self) -> int:
        return len(self.losses)

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Keep this step's loss for the next finiteness check and add its loss × n, top-1 correct
        and n to the sums (no host sync)."""
        self.losses.append(loss.detach())
        n = targets.numel()
        correct = topk_correct(logits.detach().float(), targets, (1,))[0]
        self.sums += torch.stack([loss.detach().double() * n, correct, correct.new_tensor(float(n))])

    def read(self, stop: bool, reduce: Callable[[torch.Tensor], torch.Tensor]) -> TallyReading:
        """Bring the steps since the last read to the host and start afresh. ``reduce`` sums the
        non-finite flags and the stop flag over the ranks (identity in one process), so that every
        rank sees the same first bad step and the same stop."""
        losses = torch.stack(self.losses) if self.losses else self.sums.new_zeros(0)
        flags = reduce(torch.cat([(~torch.isfinite(losses)).double(), self.sums.new_tensor([float(stop)])]))
        host = torch.cat([flags, self.sums, losses.double()]).cpu()  # the one host sync
        k = len(self.losses)
        first = next((i for i, flag in enumerate(host[:k].tolist()) if flag), None)
        reading = TallyReading(
            first_non_finite=first,
            value=host[k + 4 + first].tolist() if first is not None else float("nan"),
            stop=host[k].tolist() > 0,
            sums=host[k + 1 : k + 4].clone(),
        )
        self.losses.clear()
        self.sums.zero_()
        return reading


@dataclass
class TrainStep:
    """``step(images, targets)``: forward under autocast, the loss in float32, backward and the
    optimizer step through the GradScaler; the loss and top-1 count go to ``tally`` (no host sync)."""

    model: nn.Module  # the module trained: DDP- or compile-wrapped where the run wraps it
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # enabled for float16 only; a no-op otherwise
    amp: torch.dtype | None  # the autocast dtype; None: float32
    tally: StepTally
    device_type: str = "cpu"  # autocast's device type: "cpu" or "cuda"

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        amp = self.amp
        with torch.autocast(self.device_type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.tally.add(loss, logits, targets)
