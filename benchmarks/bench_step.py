"""Training-step benchmark: the trainer's step vs a plain fp32 PyTorch loop, PReLU vs ReLU nets,
each variant's peak RSS, and the loader's images/s beside the step's.

    python benchmarks/bench_step.py [step|loader|all] [--threads 1] [--repeats 10]
        [--models net14,net22,net30] [--presets mnist,cifar10] [--no-memory] [--json out.json]

The same as `rectifiers bench step|loader|all` (see `rectifiers.step_timing` for what each variant
runs and how the ratios are taken); the figures and their commands are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys

from rectifiers.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["step", *args]
    sys.exit(main(["bench", *args]))
