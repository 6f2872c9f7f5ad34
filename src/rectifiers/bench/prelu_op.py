"""The PReLU op against ReLU and torch's PReLU (paper: "the time complexity due to PReLU is
negligible", Sec. 2.1).

All ops of one configuration are timed in the same run, interleaved, so a machine that slows down
part-way through slows every op alike; the median of the repeats is reported, and ratios are taken
between ops measured side by side.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rectifiers.activations import prelu, prelu_reference
from rectifiers.bench.machine_info import DTYPES, synchronize
from rectifiers.bench.table import Column, rows_table
from rectifiers.interleave import paired_ratio, time_interleaved
from rectifiers.prelu_fast import CHANNELS_LAST_BY_RANK
from rectifiers.runtime import keep_freed_memory

# name -> f(x, slopes); the slopes are channel-wise along dim 1 (torch's layout).
OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": lambda x, w: torch.relu(x),
    "torch.prelu": F.prelu,
    "rectifiers.prelu": prelu,
    "prelu_reference": prelu_reference,  # Eq. 1 written out with where/mul, the ground truth
    # rectifiers.prelu's fallback where the fused kernel does not apply (ATen's PReLU kernel)
    "aten._prelu_kernel": lambda x, w: torch.ops.aten._prelu_kernel(x, w.view(1, -1, *[1] * (x.dim() - 2))),
}
DEFAULT_OPS = ("relu", "torch.prelu", "rectifiers.prelu")
_FORMATS = ("contiguous", "channels_last")


def bench_prelu_op(
    shape: Sequence[int] = (64, 64, 56, 56),
    dtypes: Sequence[str] = ("float32", "bfloat16"),
    formats: Sequence[str] = _FORMATS,
    repeats: int = 10,
    warmup: int = 2,
    device: str = "cpu",
    ops: Sequence[str] = DEFAULT_OPS,
) -> list[dict[str, Any]]:
    """Time forward and forward+backward of each op in ``ops`` on a random ``shape`` tensor with
    channel-wise slopes (dim 1), for every dtype and memory format.

    "forward" runs under ``torch.no_grad()`` (the op alone); "forward+backward" computes the output
    and backpropagates a fixed gradient to the input and to the slopes (ReLU: to the input only).
    Returns one dict per (dtype, format, pass, op) with the median and min time in ms and the ratios
    to ReLU's and to torch's PReLU in the same configuration: the median over k of the ratio of the
    two ops' k-th times (they ran side by side, in `interleave.balanced_schedule`'s order).

    Freed memory is kept for reuse first (`rectifiers.runtime.keep_freed_memory`), as the trainer
    does, so that no op pays page faults for fresh memory that another op does not.
    """
    if len(shape) < 2:
        raise ValueError(f"shape needs a channel dim 1, got {tuple(shape)}")
    unknown = [d for d in dtypes if d not in DTYPES] + [f for f in formats if f not in _FORMATS]
    unknown += [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(
            f"unknown {unknown}; dtypes: {', '.join(DTYPES)}; formats: {', '.join(_FORMATS)}; "
            f"ops: {', '.join(OPS)}"
        )
    if "channels_last" in formats and len(shape) not in (4, 5):
        raise ValueError(f"channels_last needs a 4-D or 5-D shape, got {tuple(shape)}")
    keep_freed_memory()
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    rows: list[dict[str, Any]] = []
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        for fmt in formats:
            cl = fmt == "channels_last"
            memory_format = CHANNELS_LAST_BY_RANK[len(shape)] if cl else torch.contiguous_format
            x = torch.randn(tuple(shape), generator=gen, device=dev).to(dtype, memory_format=memory_format)
            grad = torch.randn(x.shape, generator=gen, device=dev).to(dtype, memory_format=memory_format)
            w = torch.full((shape[1],), 0.25, device=dev, dtype=dtype)
            times = _measure(x, w, grad, ops, repeats, warmup, dev)
            for pass_name in ("forward", "forward+backward"):
                base = {name: times.get((name, pass_name)) for name in ("relu", "torch.prelu")}
                for op in ops:
                    t = times[(op, pass_name)]
                    rows.append(
                        {
                            "dtype": dtype_name,
                            "format": fmt,
                            "pass": pass_name,
                            "op": op,
                            "median_ms": statistics.median(t) * 1e3,
                            "min_ms": min(t) * 1e3,
                            "ratio_to_relu": paired_ratio(t, base["relu"]) if base["relu"] else None,
                            "ratio_to_torch_prelu": (
                                paired_ratio(t, base["torch.prelu"]) if base["torch.prelu"] else None
                            ),
                            "shape": list(shape),
                            "repeats": repeats,
                        }
                    )
    return rows


def _measure(
    x: Tensor, w: Tensor, grad: Tensor, ops: Sequence[str], repeats: int, warmup: int, dev: torch.device
) -> dict[tuple[str, str], list[float]]:
    xg = x.detach().requires_grad_(True)
    wg = w.detach().requires_grad_(True)

    def forward(op: str) -> None:
        with torch.no_grad():
            OPS[op](x, w)

    def forward_backward(op: str) -> None:
        xg.grad = wg.grad = None
        OPS[op](xg, wg).backward(grad)

    def timed_call(op: str, run: Callable[[str], None]) -> Callable[[], None]:
        def call() -> None:
            run(op)
            synchronize(dev)  # the previous call ended synced too, so the wall time is this call's

        return call

    # Interleaved in a carryover-balanced order: drift in machine speed, and the wake of the call
    # before (torch.prelu's backward writes full-size temporaries), hit every op alike.
    fns = {
        (op, p): timed_call(op, forward if p == "forward" else forward_backward)
        for op in ops
        for p in ("forward", "forward+backward")
    }
    return time_interleaved(fns, repeats, warmup)[0]


def format_bench_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `bench_prelu_op` as an aligned text table."""
    columns: list[Column] = [
        ("dtype", "dtype", ""),
        ("format", "format", ""),
        ("pass", "pass", ""),
        ("op", "op", ""),
        ("median ms", "median_ms", ".2f"),
        ("min ms", "min_ms", ".2f"),
        ("÷ relu", "ratio_to_relu", ".2f"),
        ("÷ torch.prelu", "ratio_to_torch_prelu", ".2f"),
    ]
    return rows_table(rows, columns, left=4)
