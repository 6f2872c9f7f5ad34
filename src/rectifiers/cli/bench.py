"""`rectifiers bench`: PReLU op, training step, peak memory and loader benchmarks."""

from __future__ import annotations

import argparse

from rectifiers.bench import SUITES
from rectifiers.bench.step import PRESET_CASES
from rectifiers.cli.common import SubParsers, parse_ints


def add(sub: SubParsers) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: PReLU op vs ReLU, training step vs a plain loop, peak memory, loader vs step",
        description="Time the PReLU op against ReLU and torch's PReLU, the trainer's step against a plain "
        "fp32 PyTorch loop (PReLU and ReLU nets), each variant's peak RSS, and the loader against the "
        "step; compared variants run interleaved in one process and medians are reported, with the "
        "machine's measured matmul peak. See benchmarks/RESULTS.md.",
    )
    p.add_argument("what", nargs="?", default="all", choices=SUITES)
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per variant (default: 10)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--shape", default="64,64,56,56", help="prelu: input shape, channels on dim 1")
    p.add_argument("--models", default="net14,net22,net30", help="step: comma-separated models")
    p.add_argument(
        "--presets",
        default="mnist,cifar10",
        help=f"step: sizes of these presets, of {', '.join(PRESET_CASES)} (default: mnist,cifar10)",
    )
    p.add_argument("--batch", type=int, default=128, help="step and loader batch (default: 128)")
    p.add_argument("--no-memory", action="store_true", help="step: skip the peak-RSS subprocesses")
    p.add_argument("--data-root", default="../shared/data", help="loader: folder holding cifar10/ etc.")
    p.add_argument(
        "--device", default="cpu", help="prelu: cpu or a CUDA device such as cuda:0 (default: cpu)"
    )
    p.add_argument("--json", metavar="PATH", help="also write every row to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from rectifiers.bench.suite import run_suite

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    shape = parse_ints(args.shape, "--shape")
    root = Path(args.data_root)
    result = run_suite(
        args.what,
        lambda text: print(text, flush=True),
        repeats=args.repeats,
        models=[m for m in args.models.split(",") if m],
        presets=[p for p in args.presets.split(",") if p],
        batch=args.batch,
        memory=not args.no_memory,
        data_root=str(root) if root.is_dir() else None,
        prelu_shape=shape,
        device=args.device,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
