"""Where a PReLU net's step loses time against the same ReLU net, when the PReLU op itself does not.

    python benchmarks/bench_act_cost.py [--repeats 40] [--models net14,net22,net30] [--preset mnist]

Part 1 times one 3x3 convolution (channels_last, batch 128; the first stage of the 28-px and the
32-px nets and a deep stage) fed the values it sees in each net: ReLU's output (half zeros) or
PReLU's (none) as input, and in the backward ReLU's input gradient (half zeros) or PReLU's (none)
as output gradient. Same shapes, strides and alignment, so any time difference is the CPU's: on
this machine's bfloat16 (AMX) convolutions, data with half its values zero runs faster.

Part 2 times the trainer's step (`rectifiers.step_timing.make_step`) of PReLU and ReLU nets with
bfloat16 autocast and in float32, interleaved (`time_interleaved`'s balanced order) with freed memory
kept in the heap as the trainer keeps it (`rectifiers.runtime.keep_freed_memory`); ratios are the
medians of paired ratios (ReLU time / PReLU time: 1 means PReLU costs nothing).

Part 3 takes the first model and changes one thing at a time between the ReLU and the PReLU step:
PReLU with its slopes frozen (no slope gradient), torch's `nn.LeakyReLU(0.25)` (PReLU's values from a
C++ op, nothing learned), and ReLU called through a Python `torch.autograd.Function` (what the fused
PReLU paid before its autograd function moved into C++, with ReLU's work).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rectifiers import PReLU, prelu
from rectifiers.bench.machine_info import format_machine, machine_info
from rectifiers.bench.step import PRESET_CASES
from rectifiers.interleave import paired_ratio, time_interleaved
from rectifiers.runtime import keep_freed_memory
from rectifiers.step_timing import StepCase, make_step


def conv_on_activation_values(repeats: int) -> None:
    print("3x3 conv, channels_last, batch 128: the same layer fed ReLU's values or PReLU's (a = 0.25)")
    columns = ("dtype", "input (N, C, H, W)", "pass", "ReLU us", "PReLU us", "relu÷prelu")
    print("{:9s} {:20s} {:16s} {:>8s} {:>9s} {:>10s}".format(*columns))
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    for dtype in (torch.bfloat16, torch.float32):
        for shape in ((128, 16, 28, 28), (128, 32, 32, 32), (128, 128, 16, 16)):
            c = shape[1]
            x = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=cl)
            w = (torch.randn(c, c, 3, 3, generator=gen) * 0.05).to(dtype).contiguous(memory_format=cl)
            g = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=cl)
            # What the layer sees in each net: its input is the previous activation's output, its
            # output gradient the next activation's input gradient (g·1[y > 0] or g·(1 or a)).
            feeds = {
                "relu": (torch.relu(x), g * (x > 0)),
                "prelu": (prelu(x, torch.full((c,), 0.25)), torch.where(x > 0, g, 0.25 * g)),
            }
            fns: dict[str, Callable[[], object]] = {}
            for act, (inp, grad) in feeds.items():
                leaf, weight = inp.clone().requires_grad_(), w.clone().requires_grad_()
                fns[f"forward {act}"] = lambda inp=inp, w=w: F.conv2d(inp, w, padding=1)
                fns[f"forward+backward {act}"] = lambda leaf=leaf, weight=weight, grad=grad: F.conv2d(
                    leaf, weight, padding=1
                ).backward(grad)
            times, _ = time_interleaved(fns, repeats, warmup=3)
            for pass_ in ("forward", "forward+backward"):
                r, p = (statistics.median(times[f"{pass_} {act}"]) for act in ("relu", "prelu"))
                size = "x".join(map(str, shape))
                row = (str(dtype)[6:], size, pass_, r * 1e6, p * 1e6, r / p)
                print("{:9s} {:20s} {:16s} {:8.0f} {:9.0f} {:10.3f}".format(*row))


def steps(models: list[str], preset: str, repeats: int) -> None:
    print(f"\ntrainer step, batch 128, {preset} sizes: ReLU time ÷ PReLU time (median of paired ratios)")
    print(f"{'model':7s} {'precision':9s} {'PReLU ms':>9s} {'ReLU ms':>8s} {'prelu÷relu':>10s}")
    for model in models:
        case = StepCase(label=f"{model} {preset}", model=model, **PRESET_CASES[preset])
        for amp in ("bf16", "off"):
            fns = {act: make_step(case, f"trainer/{act}", precision=amp) for act in ("prelu", "relu")}
            t, _ = time_interleaved(fns, repeats, warmup=3)
            ratio = statistics.median(r / p for p, r in zip(t["prelu"], t["relu"], strict=True))
            precision = "bfloat16" if amp == "bf16" else "float32"
            p_ms, r_ms = statistics.median(t["prelu"]) * 1e3, statistics.median(t["relu"]) * 1e3
            print(f"{model:7s} {precision:9s} {p_ms:9.1f} {r_ms:8.1f} {ratio:10.3f}")


class _ReluFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = torch.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return torch.ops.aten.threshold_backward(grad, ctx.saved_tensors[0], 0)


class ReluThroughPython(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return _ReluFunction.apply(x)


@dataclass(frozen=True)
class _BuiltHere(StepCase):
    """A step case whose model is built by ``make`` (a variant of the case's net), timed by `make_step`."""

    make: Callable[[], nn.Module] | None = None

    def build(self, act: str, init: bool = True) -> nn.Module:
        assert self.make is not None
        return self.make()


def one_difference_at_a_time(model: str, preset: str, repeats: int) -> None:
    print(f"\n{model} {preset}, trainer step: ReLU time ÷ each variant's (median of paired ratios)")
    case = StepCase(label=f"{model} {preset}", model=model, **PRESET_CASES[preset])

    def frozen_prelu() -> nn.Module:
        net = case.build("prelu")
        for module in net.modules():
            if isinstance(module, PReLU):
                module.weight.requires_grad_(False)
        return net

    builds: dict[str, Callable[[], nn.Module]] = {
        "relu": lambda: case.build("relu"),
        "prelu": lambda: case.build("prelu"),
        "prelu, slopes frozen": frozen_prelu,
        "nn.LeakyReLU(0.25)": lambda: case.build(partial(nn.LeakyReLU, 0.25)),
        "relu through Python": lambda: case.build(ReluThroughPython),
    }
    for amp in ("bf16", "off"):
        fns = {
            name: make_step(_BuiltHere(**asdict(case), make=build), "trainer/relu", amp)
            for name, build in builds.items()
        }
        t, _ = time_interleaved(fns, repeats, warmup=3)
        precision = "bfloat16" if amp == "bf16" else "float32"
        for name in builds:
            ms, ratio = statistics.median(t[name]) * 1e3, paired_ratio(t["relu"], t[name])
            print(f"  {precision:9s} {name:22s} {ms:7.1f} ms  {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per variant (3x for the convs)")
    parser.add_argument("--models", default="net14,net22,net30")
    parser.add_argument("--preset", default="mnist", choices=sorted(PRESET_CASES))
    args = parser.parse_args()
    keep_freed_memory()  # as the trainer does: steps reuse the heap instead of faulting in pages
    print(format_machine(machine_info()))
    # A conv takes milliseconds: three times the repeats cost little and steady its noisier ratios.
    conv_on_activation_values(3 * args.repeats)
    steps(args.models.split(","), args.preset, args.repeats)
    one_difference_at_a_time(args.models.split(",")[0], args.preset, args.repeats)


if __name__ == "__main__":
    main()
