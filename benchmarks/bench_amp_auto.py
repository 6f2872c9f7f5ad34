"""Does `train.amp = "auto"` pick the faster precision? The trainer's step in float32, in bf16 and in
what auto picks, timed side by side.

    python benchmarks/bench_amp_auto.py [--models net14] [--presets default,cifar10,experiments]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/bench_amp_auto.py   # a CPU without bf16 instructions

Auto calibrates into a fresh temporary cache unless ``--keep-cache`` is given, so each run shows what
a first run on this machine chooses. Times are CPU seconds of this process (medians of interleaved
repeats), so that other jobs on the machine slow all three alike; ``auto ÷ faster`` is the faster
precision's time over auto's (the target: at least 0.95).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from rectifiers.bench.machine_info import format_machine, machine_info
from rectifiers.bench.step import default_cases
from rectifiers.interleave import paired_ratio, time_interleaved
from rectifiers.runtime import keep_freed_memory
from rectifiers.step_timing import make_step, step_precision

MODES = ("off", "bf16", "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="net14")
    parser.add_argument("--presets", default="default,cifar10,experiments")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--keep-cache", action="store_true", help="use the calibrations already cached")
    args = parser.parse_args()
    if not args.keep_cache:
        os.environ["RECTIFIERS_CACHE"] = tempfile.mkdtemp(prefix="amp-auto-")
    keep_freed_memory()
    print(format_machine(machine_info()))
    header = ("case", "fp32 ms", "bf16 ms", "auto ms", "bf16÷fp32", "auto ÷ faster")
    print("{:22s} {:>8s} {:>8s} {:>8s} {:>9s} {:>13s}  auto's reason".format(*header))
    for case in default_cases(args.models.split(","), args.presets.split(",")):
        auto = step_precision(case, "trainer/prelu")  # once: a busy CPU's calibration is not cached
        steps = {mode: make_step(case, "trainer/prelu", auto if mode == "auto" else mode) for mode in MODES}
        _, cpu = time_interleaved(steps, args.repeats, 2)
        ms = {mode: statistics.median(cpu[mode]) * 1e3 for mode in MODES}
        bf16_speedup = paired_ratio(cpu["off"], cpu["bf16"])
        auto_vs_faster = min(ms["off"], ms["bf16"]) / ms["auto"]
        print(
            f"{case.label:22s} {ms['off']:8.0f} {ms['bf16']:8.0f} {ms['auto']:8.0f} {bf16_speedup:9.2f} "
            f"{auto_vs_faster:13.3f}  {auto.reason}",
            flush=True,
        )


if __name__ == "__main__":
    main()
