"""Where a PReLU net's step loses time against the same ReLU net, when the PReLU op itself does not.

    python benchmarks/bench_act_cost.py [--repeats 40] [--models net14,net22,net30] [--preset mnist]

Part 1 times one 3x3 convolution (channels_last, batch 128, 28 px, 16 -> 16 channels, the first
stage of the small nets) on inputs that differ only in their values: the output of ReLU (half
zeros), of PReLU with slope 0.25 (no zeros), the raw normal input, all zeros. Same shapes, strides
and alignment, so any time difference is the CPU's: on this machine's bfloat16 (AMX) convolutions
an input with half its values zero runs faster.

Part 2 times the trainer's step (`rectifiers.bench_step.make_step`) of PReLU and ReLU nets with
bfloat16 autocast and in float32, interleaved (`time_interleaved`'s balanced order) with freed memory
kept in the heap as the trainer keeps it (`rectifiers.runtime.keep_freed_memory`); ratios are the
medians of paired ratios (ReLU time / PReLU time: 1 means PReLU costs nothing).
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from rectifiers import prelu
from rectifiers.bench import format_machine, machine_info
from rectifiers.bench_step import PRESET_CASES, StepCase, make_step, time_interleaved
from rectifiers.runtime import keep_freed_memory


def conv_on_activation_outputs(repeats: int) -> None:
    print("3x3 conv on (128, 16, 28, 28) channels_last inputs of equal layout, different values")
    print(f"{'dtype':9s} {'input':22s} {'median us':>9s} {'÷ on ReLU output':>16s}")
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.bfloat16, torch.float32):
        cl = torch.channels_last
        x = torch.randn(128, 16, 28, 28, generator=gen).to(dtype).contiguous(memory_format=cl)
        w = (torch.randn(16, 16, 3, 3, generator=gen) * 0.1).to(dtype).contiguous(memory_format=cl)
        inputs = {
            "ReLU output": torch.relu(x),
            "PReLU output (a=0.25)": prelu(x, torch.full((16,), 0.25)),
            "raw N(0, 1)": x.clone(),
            "all zeros": torch.zeros_like(x),
        }
        convs = {k: (lambda v=v, w=w: F.conv2d(v, w, padding=1)) for k, v in inputs.items()}
        times, _ = time_interleaved(convs, repeats * 5, warmup=3)
        base = statistics.median(times["ReLU output"])
        for name, t in times.items():
            m = statistics.median(t)
            print(f"{str(dtype)[6:]:9s} {name:22s} {m * 1e6:9.0f} {m / base:16.3f}")


def steps(models: list[str], preset: str, repeats: int) -> None:
    print(f"\ntrainer step, batch 128, {preset} sizes: ReLU time ÷ PReLU time (median of paired ratios)")
    print(f"{'model':7s} {'precision':9s} {'PReLU ms':>9s} {'ReLU ms':>8s} {'prelu÷relu':>10s}")
    for model in models:
        case = StepCase(label=f"{model} {preset}", model=model, **PRESET_CASES[preset])
        for amp in ("bf16", "off"):
            fns = {act: make_step(case, f"trainer/{act}", amp_mode=amp) for act in ("prelu", "relu")}
            t, _ = time_interleaved(fns, repeats, warmup=3)
            ratio = statistics.median(r / p for p, r in zip(t["prelu"], t["relu"], strict=True))
            precision = "bfloat16" if amp == "bf16" else "float32"
            p_ms, r_ms = statistics.median(t["prelu"]) * 1e3, statistics.median(t["relu"]) * 1e3
            print(f"{model:7s} {precision:9s} {p_ms:9.1f} {r_ms:8.1f} {ratio:10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--models", default="net14,net22,net30")
    parser.add_argument("--preset", default="mnist", choices=sorted(PRESET_CASES))
    args = parser.parse_args()
    keep_freed_memory()  # as the trainer does: steps reuse the heap instead of faulting in pages
    print(format_machine(machine_info()))
    conv_on_activation_outputs(args.repeats)
    steps(args.models.split(","), args.preset, args.repeats)


if __name__ == "__main__":
    main()
