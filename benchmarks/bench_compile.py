"""Does `train.compile` (torch.compile of the model) speed up the trainer's float32 step on a CPU?

    python benchmarks/bench_compile.py [--presets cifar10,experiments] [--repeats 10]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/bench_compile.py   # a CPU without bf16 instructions

The trainer's float32 step (`rectifiers.step_timing.make_step`: channels_last, the fused PReLU, SGD at
lr 0 on one fixed batch) with the model eager and compiled, timed interleaved after both have compiled and
warmed up; prints the time the first two steps took (the compilation) and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rectifiers.bench.machine_info import format_machine, machine_info
from rectifiers.bench.step import default_cases
from rectifiers.interleave import paired_ratio, time_interleaved
from rectifiers.runtime import keep_freed_memory
from rectifiers.step_timing import make_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="cifar10,experiments")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    keep_freed_memory()
    print(format_machine(machine_info()))
    for case in default_cases(("net14",), args.presets.split(",")):
        steps = {}
        for kind in ("eager", "compiled"):
            step = make_step(case, "trainer/prelu", "off", compiled=kind == "compiled")
            started = time.perf_counter()
            step()
            step()
            print(f"{case.label}: {kind} first 2 steps {time.perf_counter() - started:.1f} s", flush=True)
            steps[kind] = step
        wall, _ = time_interleaved(steps, args.repeats, 2)
        eager, compiled = (statistics.median(wall[k]) * 1e3 for k in ("eager", "compiled"))
        speed = paired_ratio(wall["eager"], wall["compiled"])
        times = f"eager {eager:.0f} ms, compiled {compiled:.0f} ms"
        print(f"{case.label}: {times}, compiled ÷ eager speed {speed:.3f}")


if __name__ == "__main__":
    main()
