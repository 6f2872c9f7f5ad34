"""`python tests/faults/launch.py <rectifiers arguments>`: the `rectifiers` CLI with faults injected.

The fault suite runs the real command in a subprocess (or under torchrun); this launcher is that
command plus the faults named by test-only environment variables, applied before `main` runs. Without
any of them it is exactly `python -m rectifiers`.

    FAULT_ENOSPC_AFTER=N     the (N+1)-th `torch.save` writes half its bytes, then fails with ENOSPC
    FAULT_LOSS_AT_STEP=S     the training loss of optimizer step S (1-based) becomes FAULT_LOSS_VALUE
    FAULT_LOSS_VALUE=V       nan (default), inf or -inf
    FAULT_RAISE_AT_STEP=S    raise RuntimeError("injected fault ...") just before step S ...
    FAULT_RAISE_RANK=R       ... on rank R only (default 0)
    FAULT_RANK_CWD=R:DIR     rank R works in DIR: with a relative --out, its run directory is a folder
                             of its own, as on a node that does not share the others' storage
"""

from __future__ import annotations

import errno
import io
import os
import sys


def _inject_enospc(after: int) -> None:
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= after:
            return real_save(obj, f, *args, **kwargs)
        # A real full disk fails part-way through: some bytes reach the file first.
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        if hasattr(f, "write"):
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    torch.save = save


def _inject_loss(step: int, value: float) -> None:
    import torch.nn.functional as F

    from rectifiers import train_step

    class PoisonedFunctional:
        """train_step.F with a cross_entropy that returns `value` at training step `step`."""

        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str):
            return getattr(F, name)

        def cross_entropy(self, logits, targets, **kwargs):
            loss = F.cross_entropy(logits, targets, **kwargs)
            self.calls += 1
            return loss * 0 + value if self.calls == step else loss

    train_step.F = PoisonedFunctional()


def _inject_raise(step: int, rank: int) -> None:
    from rectifiers import train_step

    real_step = train_step.TrainStep.__call__
    calls = {"n": 0}

    def call(self, images, targets):
        calls["n"] += 1
        if int(os.environ.get("RANK", "0")) == rank and calls["n"] == step:
            raise RuntimeError(f"injected fault on rank {rank} at step {step}")
        return real_step(self, images, targets)

    train_step.TrainStep.__call__ = call


def _move_rank(spec: str) -> None:
    rank, _, folder = spec.partition(":")
    if os.environ.get("RANK", "0") == rank:
        os.chdir(folder)


def main() -> int:
    env = os.environ
    if "FAULT_RANK_CWD" in env:
        _move_rank(env["FAULT_RANK_CWD"])
    if "FAULT_ENOSPC_AFTER" in env:
        _inject_enospc(int(env["FAULT_ENOSPC_AFTER"]))
    if "FAULT_LOSS_AT_STEP" in env:
        _inject_loss(int(env["FAULT_LOSS_AT_STEP"]), float(env.get("FAULT_LOSS_VALUE", "nan")))
    if "FAULT_RAISE_AT_STEP" in env:
        _inject_raise(int(env["FAULT_RAISE_AT_STEP"]), int(env.get("FAULT_RAISE_RANK", "0")))
    from rectifiers.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
