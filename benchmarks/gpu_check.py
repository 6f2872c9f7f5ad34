"""GPU readiness check: the CUDA paths of `rectifiers`, in one command, in a few minutes.

    python benchmarks/gpu_check.py [--out DIR] [--device cuda:0]

Each check runs the real CLI in a fresh process (`python -m rectifiers ...`) on fake data:

    train bf16      model A of Table 3 (224 px, batch 32; fc layers 1024 wide to keep checkpoints
                    small), channels_last, bf16 autocast, 4 steps
    train fp16      the same with fp16 autocast and the GradScaler
    resume exact    fp16 + GradScaler, deterministic kernels: 5 steps straight, against 2 steps,
                    a mid-epoch stop and `--resume auto`; the weights must match bitwise
    compile         net14 (Table 1) with `--compile`, bf16, 6 steps
    eval ten        10-view evaluation of the bf16 run's checkpoint
    eval dense      dense multi-scale evaluation (256, 320) of the same checkpoint
    bench prelu     `rectifiers bench prelu --device cuda`: the PReLU op against ReLU and torch's

and one table of what passed, how long each took and what it reported closes the run; the exit code
is 1 if any check failed. Without a CUDA device it says so and exits 0 (the test suite runs it so on
CPU, and runs `run_checks` itself on the CPU at toy sizes). Figures from a run go into
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The largest fake images are 256 px: the 224 crop with scale jitter 256-288, and dense eval at 320.
FAKE_224 = "fake:n=96,val=32,size=256,classes=10,channels=3,seed=0"
FAKE_32 = "fake:n=384,val=64,size=32,classes=10,channels=3,seed=0"
MODEL_A = [
    "--config", "imagenet_model_a", "--data", FAKE_224, "--batch-size", "32", "--workers", "0",
    "--set", "data.scale_max=288", "--set", "model.fc_width=1024", "--quiet",
]  # fmt: skip
NET14 = ["--config", "cifar10", "--data", FAKE_32, "--batch-size", "64", "--quiet"]
CHECK_TIMEOUT_S = 240


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: str


def _rectifiers(args: list[str], env: dict[str, str]) -> tuple[bool, float, str]:
    """Run `python -m rectifiers ARGS`; (exit code 0, seconds, the last output line or the error)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rectifiers", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=CHECK_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - started, f"timed out after {CHECK_TIMEOUT_S} s"
    seconds = time.perf_counter() - started
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, seconds, lines[-1] if lines else f"exit {done.returncode}"


def _same_weights(a: Path, b: Path) -> str:
    """ "" when the two checkpoints' weights are bitwise equal, else the first differing tensors."""
    import torch

    from rectifiers.checkpoint.store import load_checkpoint

    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    differ = [k for k in wa if k not in wb or not torch.equal(wa[k], wb[k])]
    return ", ".join(differ[:3])


def _train(name: str, out: Path, args: list[str], env: dict[str, str]) -> Check:
    ok, seconds, last = _rectifiers(["train", "--out", str(out), *args], env)
    detail = last
    metrics = out / "metrics.jsonl"
    if ok and (out / "last.pt").is_file():
        config = json.loads((out / "config.json").read_text())
        detail = f"{config['resolved']['precision']}; " + (
            f"{json.loads(metrics.read_text().splitlines()[-1])['images_per_s']:.0f} img/s"
            if metrics.is_file() and metrics.read_text().strip()
            else "no finished epoch"
        )
    return Check(name, ok, seconds, detail)


def run_checks(
    out: Path, device: str, big: list[str] = MODEL_A, small: list[str] = NET14, scaled: str = "fp16"
) -> list[Check]:
    """Every check on ``device``. ``big`` and ``small`` are the two models' training arguments and
    ``scaled`` the precision of the GradScaler runs: the test suite runs the checks on a CPU with toy
    models and bf16, so that what they read from the runs is checked before a GPU is lent."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    dev = ["--device", device]
    checks = [
        _train("train bf16", out / "bf16", [*big, *dev, "--amp", "bf16", "--max-steps", "4"], env),
        _train(f"train {scaled}", out / "scaled", [*big, *dev, "--amp", scaled, "--max-steps", "4"], env),
    ]

    exact = [*big, *dev, "--amp", scaled, "--deterministic", "--epochs", "2"]
    straight = _train("resume exact", out / "straight", [*exact, "--max-steps", "5"], env)
    first = _train("resume exact", out / "split", [*exact, "--max-steps", "2"], env)
    second = _train("resume exact", out / "split", [*exact, "--max-steps", "5", "--resume", "auto"], env)
    ok = straight.ok and first.ok and second.ok
    differ = _same_weights(out / "straight" / "last.pt", out / "split" / "last.pt") if ok else ""
    detail = (
        ("bitwise equal after 2 + 3 steps" if not differ else f"weights differ: {differ}")
        if ok
        else next(c.detail for c in (straight, first, second) if not c.ok)
    )
    seconds = straight.seconds + first.seconds + second.seconds
    checks.append(Check("resume exact", ok and not differ, seconds, detail))

    checks.append(
        _train(
            "compile", out / "compiled", [*small, *dev, "--amp", "bf16", "--compile", "--max-steps", "6"], env
        )
    )
    checkpoint = str(out / "bf16" / "last.pt")
    for views, extra in (("ten", []), ("dense", ["--scales", "256,320"])):
        ok, seconds, last = _rectifiers(
            [
                "eval",
                checkpoint,
                "--views",
                views,
                *extra,
                *dev,
                "--quiet",
                "--out",
                str(out / f"eval_{views}"),
            ],
            env,
        )
        results = out / f"eval_{views}" / "results.json"
        if ok and results.is_file():
            last = f"top-1 error {json.loads(results.read_text())['top1_err']:.3f} (fake data)"
        checks.append(Check(f"eval {views}", ok, seconds, last))
    ok, seconds, last = _rectifiers(
        ["bench", "prelu", *dev, "--repeats", "5", "--json", str(out / "bench_prelu.json")], env
    )
    if ok:
        rows = json.loads((out / "bench_prelu.json").read_text())["prelu"]
        worst = max(
            (r for r in rows if r["op"] == "rectifiers.prelu" and r["pass"] == "forward+backward"),
            key=lambda r: r["ratio_to_relu"],
        )
        where = f"{worst['dtype']} {worst['format']}"
        last = f"rectifiers.prelu fwd+bwd at most {worst['ratio_to_relu']:.2f}x relu's time ({where})"
    checks.append(Check("bench prelu", ok, seconds, last))
    return checks


def format_checks(checks: list[Check]) -> str:
    header = ["check", "result", "seconds", "detail"]
    body = [[c.name, "ok" if c.ok else "FAILED", f"{c.seconds:.0f}", c.detail] for c in checks]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(3)]
    lines = [[*header], ["-" * w for w in widths] + ["-" * 6], *body]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in lines
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="CUDA device (default: cuda)")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)

    import torch

    if not args.device.startswith("cuda"):
        parser.error(f"--device must be a CUDA device, got {args.device!r}")
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        print(f"gpu_check: skipped: no CUDA device (torch {torch.__version__}, CUDA build: {build})")
        return 0
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(torch.device(args.device))
    print(f"gpu_check on {gpu}, torch {torch.__version__}, runs in {out}", flush=True)
    started = time.perf_counter()
    checks = run_checks(out, args.device)
    print(format_checks(checks))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
