"""`rectifiers train`: fit a model with the paper's recipe from a preset or TOML config plus overrides."""

from __future__ import annotations

import argparse
import sys

from rectifiers.cli.common import SubParsers
from rectifiers.config import AMP_MODES
from rectifiers.init import MODES, SCHEMES
from rectifiers.layers import ACTIVATIONS

# flag -> config key; every other field is reachable with --set key=value
_FLAGS = {
    "data": "data.spec",
    "model": "model.name",
    "act": "model.act",
    "init": "init.scheme",
    "init_mode": "init.mode",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "optim.lr",
    "seed": "train.seed",
    "out": "train.out",
    "resume": "train.resume",
    "device": "train.device",
    "amp": "train.amp",
    "workers": "data.workers",
    "max_steps": "train.max_steps",
}
_SWITCHES = {"deterministic": "train.deterministic", "quiet": "train.quiet", "compile": "train.compile"}


def add(sub: SubParsers) -> None:
    p = sub.add_parser(
        "train",
        help="train a model with the paper's recipe (default: a small PReLU-net on mnist5k)",
        description="Train with the paper's recipe. With no arguments: the `default` preset, a small "
        "PReLU-net on the 5,000 embedded MNIST digits. Launch with torchrun for DDP.",
    )
    p.add_argument(
        "--config", default="default", help="preset name or TOML file (presets: see --list-presets)"
    )
    p.add_argument("--list-presets", action="store_true", help="print the preset names and exit")
    p.add_argument(
        "--data",
        help="data spec: mnist5k | cifar10[:PATH] | idx:PATH | folder:PATH | tinyimagenet:PATH | "
        "fake[:k=v,..]",
    )
    p.add_argument("--model", help="model name (see `rectifiers models`)")
    p.add_argument("--act", choices=ACTIVATIONS, help="activation (prelu: channel-wise)")
    p.add_argument("--init", choices=SCHEMES, help="init scheme")
    p.add_argument("--init-mode", choices=MODES, help="fan_in: Eq. 10; fan_out: Eq. 14")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global mini-batch (split over torchrun processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run directory (default runs/<preset>)")
    p.add_argument("--resume", help="auto (newest valid checkpoint in --out) or a checkpoint path")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, help="mixed precision (fp16: CUDA only)")
    p.add_argument("--workers", type=int, help="decoding processes for image folders")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (smoke runs)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels, float32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set optim.weight_decay=0 (repeatable)",
    )
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from rectifiers.config import parse_override

    overrides = {key: getattr(args, flag) for flag, key in _FLAGS.items() if getattr(args, flag) is not None}
    overrides.update({key: True for flag, key in _SWITCHES.items() if getattr(args, flag)})
    overrides.update(parse_override(item) for item in args.set)
    return overrides


def run(args: argparse.Namespace) -> int:
    from rectifiers.config import list_presets, load_config

    if args.list_presets:
        print("\n".join(list_presets()))
        return 0
    config = load_config(args.config, _overrides(args))
    from rectifiers.checkpoint.resume import CheckpointWriteError
    from rectifiers.engine import NonFiniteLossError, fit
    from rectifiers.runtime import keep_freed_memory

    # Process-wide and not undoable, so here in the command rather than in `fit` (runtime.py).
    keep_freed_memory()  # steps reuse freed memory instead of faulting in fresh pages

    try:
        result = fit(config)
    except (NonFiniteLossError, CheckpointWriteError) as err:
        print(f"rectifiers train: stopped: {err}", file=sys.stderr)
        return 3 if isinstance(err, NonFiniteLossError) else 4
    if result["status"] == "interrupted":
        return 128 + int(result["signal"])
    if result["metrics"] and not config.train.quiet:
        print(_end_line(result, config.train.max_steps))
    return 0


def _end_line(result: dict, max_steps: int) -> str:
    metrics, where = result["metrics"], f"run directory {result['run_dir']}"
    if metrics.get("partial"):
        return (
            f"done: stopped at train.max_steps = {max_steps} (epoch {metrics['epoch']}, batch "
            f"{metrics['batch']} of {metrics['batches']}); val top-1 error "
            f"{100 * metrics['val_top1_err']:.2f}% after {result['step']} steps; {where}"
        )
    stopped = f"stopped at train.max_steps = {max_steps}, " if result["status"] == "max_steps" else ""
    return (
        f"done: {stopped}{result['epoch']} epochs, {result['step']} steps; best val top-1 error "
        f"{100 * result['best_val_top1_err']:.2f}%; {where}"
    )
