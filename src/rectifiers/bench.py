"""Micro-benchmark of the PReLU op against ReLU and torch's PReLU (paper: "the time complexity due to
PReLU is negligible", Sec. 2.1).

All ops of one configuration are timed in the same run, interleaved (op A, op B, op C, op A, ...), so
a machine that slows down part-way through slows every op alike; the median of the repeats is
reported, and ratios are taken between ops measured side by side.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rectifiers.activations import prelu, prelu_reference

__all__ = ["DEFAULT_OPS", "OPS", "bench_prelu_op", "format_bench_table", "machine_info"]

# name -> f(x, slopes); the slopes are channel-wise along dim 1 (torch's layout).
OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": lambda x, w: torch.relu(x),
    "torch.prelu": F.prelu,
    "rectifiers.prelu": prelu,
    "prelu_reference": prelu_reference,  # Eq. 1 written out with where/mul, the ground truth
}
DEFAULT_OPS = ("relu", "torch.prelu", "rectifiers.prelu")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_FORMATS = ("contiguous", "channels_last")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


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
    of the median to ReLU's and to torch's PReLU in the same configuration.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    if len(shape) < 2:
        raise ValueError(f"shape needs a channel dim 1, got {tuple(shape)}")
    unknown = [d for d in dtypes if d not in _DTYPES] + [f for f in formats if f not in _FORMATS]
    unknown += [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(
            f"unknown {unknown}; dtypes: {', '.join(_DTYPES)}; formats: {', '.join(_FORMATS)}; "
            f"ops: {', '.join(OPS)}"
        )
    if "channels_last" in formats and len(shape) not in (4, 5):
        raise ValueError(f"channels_last needs a 4-D or 5-D shape, got {tuple(shape)}")
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    rows: list[dict[str, Any]] = []
    for dtype_name in dtypes:
        dtype = _DTYPES[dtype_name]
        for fmt in formats:
            memory_format = torch.contiguous_format
            if fmt == "channels_last":
                memory_format = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
            x = torch.randn(tuple(shape), generator=gen, device=dev).to(dtype)
            x = x.contiguous(memory_format=memory_format)
            grad = torch.randn(x.shape, generator=gen, device=dev).to(dtype)
            grad = grad.contiguous(memory_format=memory_format)
            w = torch.full((shape[1],), 0.25, device=dev, dtype=dtype)
            times = _measure(x, w, grad, ops, repeats, warmup, dev)
            for pass_name in ("forward", "forward+backward"):
                medians = {op: statistics.median(times[(op, pass_name)]) for op in ops}
                for op in ops:
                    t = times[(op, pass_name)]
                    rows.append(
                        {
                            "dtype": dtype_name,
                            "format": fmt,
                            "pass": pass_name,
                            "op": op,
                            "median_ms": medians[op] * 1e3,
                            "min_ms": min(t) * 1e3,
                            "ratio_to_relu": medians[op] / medians["relu"] if "relu" in medians else None,
                            "ratio_to_torch_prelu": (
                                medians[op] / medians["torch.prelu"] if "torch.prelu" in medians else None
                            ),
                            "shape": list(shape),
                            "repeats": repeats,
                        }
                    )
    return rows


def _measure(
    x: Tensor, w: Tensor, grad: Tensor, ops: Sequence[str], repeats: int, warmup: int, dev: torch.device
) -> dict[tuple[str, str], list[float]]:
    times: dict[tuple[str, str], list[float]] = {
        (op, p): [] for op in ops for p in ("forward", "forward+backward")
    }
    xg = x.detach().requires_grad_(True)
    wg = w.detach().requires_grad_(True)

    def forward(op: str) -> None:
        with torch.no_grad():
            OPS[op](x, w)

    def forward_backward(op: str) -> None:
        xg.grad = None
        wg.grad = None
        OPS[op](xg, wg).backward(grad)

    for i in range(warmup + repeats):
        # Interleave: every op runs once per round, so drift in machine speed hits all of them.
        for op in ops:
            t = _timed(lambda op=op: forward(op), dev)
            if i >= warmup:
                times[(op, "forward")].append(t)
        for op in ops:
            t = _timed(lambda op=op: forward_backward(op), dev)
            if i >= warmup:
                times[(op, "forward+backward")].append(t)
    return times


def format_bench_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `bench_prelu_op` as an aligned text table."""
    header = ["dtype", "format", "pass", "op", "median ms", "min ms", "÷ relu", "÷ torch.prelu"]

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    body = [
        [
            r["dtype"],
            r["format"],
            r["pass"],
            r["op"],
            f"{r['median_ms']:.2f}",
            f"{r['min_ms']:.2f}",
            ratio(r["ratio_to_relu"]),
            ratio(r["ratio_to_torch_prelu"]),
        ]
        for r in rows
    ]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(wd) if c < 4 else cell.rjust(wd)
            for c, (cell, wd) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * wd for wd in widths]), *map(line, body)])
