"""`rectifiers <subcommand>`: thin wrappers over the library's functions.

Each subcommand is one `_add_<name>(subparsers)` function that registers its arguments and sets
`func`, a callable taking the parsed arguments and returning an exit code. Heavy modules are
imported inside those callables so that `rectifiers --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rectifiers import __version__

_SubParsers = argparse._SubParsersAction  # the object add_subparsers() returns


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rectifiers",
        description="PReLU, He initialization and the PReLU-nets of 'Delving Deep into Rectifiers'.",
    )
    parser.add_argument("--version", action="version", version=f"rectifiers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        # Bad input of any kind ends in one clear line, not a traceback.
        print(f"rectifiers {args.command}: error: {err}", file=sys.stderr)
        return 2


# ------------------------------------------------------------------------------------------ train

# flag -> config key; every other field is reachable with --set key=value
_TRAIN_FLAGS = {
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
_TRAIN_SWITCHES = {"deterministic": "train.deterministic", "quiet": "train.quiet", "compile": "train.compile"}


def _add_train(sub: _SubParsers) -> None:
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
        "--data", help="data spec: mnist5k | idx:PATH | folder:PATH | tinyimagenet:PATH | fake[:k=v,..]"
    )
    p.add_argument("--model", help="model name (see `rectifiers models`)")
    p.add_argument("--act", help="relu | prelu | prelu_shared | leaky_relu")
    p.add_argument("--init", help="init scheme: he | xavier | gaussian | torch")
    p.add_argument("--init-mode", help="fan_in (Eq. 10) | fan_out (Eq. 14) | fan_avg")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global mini-batch (split over torchrun processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run directory (default runs/<preset>)")
    p.add_argument("--resume", help="auto (newest valid checkpoint in --out) or a checkpoint path")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", help="auto | off | bf16 | fp16")
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
    p.set_defaults(func=_run_train)


def _train_overrides(args: argparse.Namespace) -> dict[str, str]:
    from rectifiers.config import parse_override

    overrides = {
        key: getattr(args, flag) for flag, key in _TRAIN_FLAGS.items() if getattr(args, flag) is not None
    }
    overrides.update({key: True for flag, key in _TRAIN_SWITCHES.items() if getattr(args, flag)})
    overrides.update(parse_override(item) for item in args.set)
    return overrides


def _run_train(args: argparse.Namespace) -> int:
    from rectifiers.config import list_presets, load_config

    if args.list_presets:
        print("\n".join(list_presets()))
        return 0
    config = load_config(args.config, _train_overrides(args))
    from rectifiers.engine import CheckpointWriteError, NonFiniteLossError, fit

    try:
        result = fit(config)
    except NonFiniteLossError as err:
        print(f"rectifiers train: stopped: {err}", file=sys.stderr)
        return 3
    except CheckpointWriteError as err:
        print(f"rectifiers train: stopped: {err}", file=sys.stderr)
        return 4
    if result["status"] == "interrupted":
        return 128 + int(result["signal"])
    metrics = result["metrics"]
    if metrics and not config.train.quiet:
        print(
            f"done: {result['epoch']} epochs, {result['step']} steps; best val top-1 error "
            f"{100 * result['best_val_top1_err']:.2f}%; run directory {result['run_dir']}"
        )
    return 0


def _add_models(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "models",
        help="list the models with depth, parameters and multiply-adds",
        description="Every registered model at its default size (built on the meta device, so even "
        "model C costs no memory): depth (conv + fc), parameters, PReLU slopes, multiply-adds per image "
        "(the paper's Table 3 'complexity') and the size of the last conv map. Name models to get "
        "their per-layer tables instead.",
    )
    p.add_argument("names", nargs="*", metavar="MODEL", help="print these models' per-layer tables")
    p.add_argument("--act", default="prelu", help="relu | prelu | prelu_shared | leaky_relu (default: prelu)")
    p.add_argument("--stem", default="imagenet", help="imagenet (default) | small")
    p.add_argument("--size", type=int, default=224, help="input side in pixels (default: 224)")
    p.add_argument("--classes", type=int, default=1000, help="classifier outputs (default: 1000)")
    p.add_argument("--width", type=float, default=1.0, help="conv channel multiplier (default: 1)")
    p.add_argument("--fc-width", type=int, help="units of fc1 and fc2 (default: the model's, 4096)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    import torch

    from rectifiers.complexity import complexity
    from rectifiers.models import create_model, list_models

    kwargs = dict(act=args.act, stem=args.stem, num_classes=args.classes, width=args.width, init=False)
    kwargs["fc_width"] = args.fc_width
    for name in args.names:
        with torch.device("meta"):
            net = create_model(name, **kwargs)
        report = complexity(net, args.size)
        print(f"{name} ({args.act}, {args.stem} stem, {args.size} px)")
        print(report.to_markdown() if args.markdown else report)
        print()
    if args.names:
        return 0
    header = ("model", "depth", "params", "slopes", "multiply-adds", "×10¹⁰", "last map")
    rows = []
    for name in list_models():
        with torch.device("meta"):
            net = create_model(name, **kwargs)
        report = complexity(net, args.size)
        h, w = net.feature_size(args.size)
        macs, params, slopes = report.total_macs, report.total_params, net.num_slopes()
        cells = (str(report.depth), f"{params:,}", f"{slopes:,}", f"{macs:,}", f"{macs / 1e10:.3f}")
        rows.append((name, *cells, f"{h}×{w}"))
    print(f"{args.act}, {args.stem} stem, width {args.width:g}, {args.size} px input, {args.classes} classes")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|---|" + "---:|" * (len(header) - 1))
        print("\n".join("| " + " | ".join(row) + " |" for row in rows))
        return 0
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        right = [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        print("  ".join([row[0].ljust(widths[0]), *right]))
    return 0


# ------------------------------------------------------------------------------------ init-report


def _add_init_report(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "init-report",
        help="per-layer init stds (Eq. 10/14/15) and the signal variance of a deep net against theory",
        description="Without MODEL: initialize a plain deep ReLU net (no normalization), print its "
        "per-layer init table and its forward and backward signal variance, measured over several "
        "random draws, beside Eq. 9 and Eq. 13. With MODEL: the init table of that registered model, "
        "built on the meta device (stds need shapes only). --std adds the factor by which that fixed std "
        "scales the signal between --from and --to relative to He's init (paper Sec. 2.2).",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="a model of `rectifiers models` (default: demo)")
    p.add_argument("--scheme", default="he", choices=("he", "xavier", "gaussian", "torch"))
    p.add_argument(
        "--mode",
        default="fan_out",
        choices=("fan_in", "fan_out", "fan_avg"),
        help="fan_in: Eq. 10 (forward); fan_out: Eq. 14 (backward, what the paper trains with; default)",
    )
    p.add_argument("--a", default="auto", help="slope a of Eq. 15, or auto (from each layer's activation)")
    p.add_argument(
        "--std",
        type=float,
        help="a fixed std: the init of --scheme gaussian, and the std whose attenuation "
        "between --from and --to is reported",
    )
    p.add_argument("--fc-std", help="fixed stds of the Linear layers, e.g. 0.01,0.01,0.001 (the paper's)")
    p.add_argument(
        "--from",
        dest="start",
        help="attenuation: first layer, a name or 1-based number (default: the second conv layer)",
    )
    p.add_argument("--to", dest="end", help="attenuation: last layer (default: the last conv layer)")
    p.add_argument("--act", help="relu | prelu | prelu_shared | leaky_relu (default: the model's, or relu)")
    p.add_argument("--net", default="mlp", choices=("mlp", "conv"), help="demo: MLP or circular-padded CNN")
    p.add_argument("--depth", type=int, default=30, help="demo: weight layers (default: 30)")
    p.add_argument("--width", type=int, help="demo: units or filters per layer (default: 1024 mlp, 64 conv)")
    p.add_argument("--batch", type=int, help="demo: input batch (default: 128 mlp, 16 conv of 16×16)")
    p.add_argument("--draws", type=int, default=8, help="demo: independent random draws (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="demo: seed of the first draw")
    p.add_argument("--plot", metavar="PATH", help="demo: save the variance-vs-depth figure (PNG)")
    p.add_argument("--markdown", action="store_true", help="print the init table as markdown")
    p.add_argument("--json", metavar="PATH", help="also write the reports as JSON")
    p.set_defaults(func=_run_init_report)


def _attenuation_lines(report, std: float, start: str | None, end: str | None) -> tuple[list[str], dict]:
    convs = [r.name for r in report if r.kind.startswith("Conv")]
    names = convs if len(convs) >= 2 else [r.name for r in report]
    if len(names) < 2 and (start is None or end is None):
        raise ValueError("the attenuation needs two layers; pass --from and --to")
    start = start or names[1]
    end = end or names[-1]
    first, last = report[start].name, report[end].name
    back = report.attenuation(start, end, std=std)
    fwd = report.attenuation(start, end, std=std, direction="forward")
    lines = [
        f"std {std:g} on {first} .. {last}, relative to He (each layer's own a):",
        f"  backward (Eq. 13): gradient std from {last} back to {first} × {back:.4g} (1/{1 / back:.4g})",
        f"  forward  (Eq. 9):  response std from {first} to {last} × {fwd:.4g} (1/{1 / fwd:.4g})",
    ]
    return lines, {"std": std, "from": first, "to": last, "backward": back, "forward": fwd}


def _run_init_report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from rectifiers.init import initialize

    try:
        a = args.a if args.a == "auto" else float(args.a)
        fc_std = None if args.fc_std is None else [float(s) for s in args.fc_std.split(",")]
    except ValueError:
        msg = f"--a takes 'auto' or a number, --fc-std numbers; got {args.a!r}, {args.fc_std!r}"
        raise ValueError(msg) from None
    kwargs = {"scheme": args.scheme, "mode": args.mode, "a": a, "fc_std": fc_std}
    kwargs["std"] = args.std if args.scheme == "gaussian" else None
    out: dict = {}
    if args.model:
        if args.plot:
            raise ValueError("--plot measures the demo net; a MODEL is only built on the meta device")
        from rectifiers.models import create_model

        model_kwargs = {"init": False} | ({"act": args.act} if args.act else {})
        with torch.device("meta"):
            model = create_model(args.model, **model_kwargs)
        report = initialize(model, **kwargs)
        print(f"{args.model}: " + (report.to_markdown() if args.markdown else str(report)))
        out["init"] = report.to_dict()
    else:
        from rectifiers.demo_nets import plain_convnet, plain_mlp
        from rectifiers.diagnostics import signal_variance_over_draws

        if args.draws < 1 or args.depth < 1:
            raise ValueError(f"--draws and --depth must be positive, got {args.draws}, {args.depth}")
        act = args.act or "relu"
        # The input gets its own stream: a generator seeded like a draw's weights would replay them.
        # (CPU generators keep only the low 32 bits of a seed, so the offset stays below 2**32.)
        gen = torch.Generator().manual_seed(args.seed + 0x1234_5678)
        if args.net == "mlp":
            width, batch = args.width or 1024, args.batch or 128
            x = torch.randn(batch, width, generator=gen)
            make = lambda: plain_mlp(args.depth, width, act=act)  # noqa: E731
            what = f"plain {args.depth}-layer MLP, width {width}, {act} after each"
        else:
            width, batch = args.width or 64, args.batch or 16
            x = torch.randn(batch, 3, 16, 16, generator=gen)
            make = lambda: plain_convnet(args.depth, width, act=act)  # noqa: E731
            what = f"plain {args.depth}-layer 3×3 convnet (circular padding), width {width}, {act} after each"
        init_reports = []

        def build(seed: int) -> torch.nn.Module:
            torch.manual_seed(seed)  # PyTorch's own init (scheme torch) and nothing else
            net = make()
            gen = None if args.scheme == "torch" else torch.Generator().manual_seed(seed)
            init_reports.append(initialize(net, generator=gen, **kwargs))
            return net

        draws = signal_variance_over_draws(build, x, draws=args.draws, seed=args.seed)
        report = init_reports[0]
        print(f"demo: {what}; input N(0, 1) of shape {tuple(x.shape)}")
        print(report.to_markdown() if args.markdown else report)
        print()
        print("signal variance (Eq. 7-13; Var[Δx] from a N(0, 1) gradient at the output):")
        print(draws if args.draws > 1 else draws.reports[0])
        out["init"] = report.to_dict()
        out["variance"] = draws.to_dict()
        if args.plot:
            title = f"{args.scheme} {args.mode}: {what}"
            path = (draws if args.draws > 1 else draws.reports[0]).plot(args.plot, title=title)
            print(f"plot: {path}")
    if args.std is not None:
        lines, out["attenuation"] = _attenuation_lines(report, args.std, args.start, args.end)
        print()
        print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


# ------------------------------------------------------------------------------------------- eval


def _add_eval(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "eval",
        help="test checkpoints: single-view, 10-view or dense multi-scale, one model or an ensemble",
        description="Score a data split with one checkpoint or an ensemble (softmax scores averaged; "
        "each checkpoint rebuilds its own model, crop and normalization). Writes DIR/results.json "
        "(top-1/top-5 error, per-class error, confusion counts) and prints a table. Launch with "
        "torchrun to split the images over processes; each image is counted once.",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="checkpoint file(s) (.pt)")
    p.add_argument("--data", help="data spec (default: the first checkpoint's training data)")
    p.add_argument("--split", default="val", help="split to score (default: val)")
    p.add_argument(
        "--views",
        default="single",
        choices=("single", "ten", "dense"),
        help="single: center crop; ten: 4 corners + center, with flips; dense: sliding windows on the "
        "last conv map, image and mirror (paper Sec. 3). Default: single",
    )
    p.add_argument(
        "--scales",
        help="comma-separated shorter sides, scores averaged over them, e.g. 256,384,480 "
        "(default: the checkpoint's data.eval_resize)",
    )
    p.add_argument("--stride", type=int, default=1, help="dense: window step on the conv map (default: 1)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--out", help="output folder (default: eval_<views> beside the first checkpoint)")
    p.add_argument("--save-scores", action="store_true", help="also write per-image scores to DIR/scores.pt")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes for image files")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rectifiers import distributed
    from rectifiers.evaluate import evaluate, format_results, write_results

    try:
        scales = [int(s) for s in args.scales.split(",")] if args.scales else None
    except ValueError:
        raise ValueError(f"--scales takes comma-separated integers, got {args.scales!r}") from None
    ctx = distributed.setup(args.device)
    try:
        results = evaluate(
            args.checkpoints,
            args.data,
            split=args.split,
            views=args.views,
            scales=scales,
            batch_size=args.batch_size,
            stride=args.stride,
            device=ctx.device,
            save_scores=args.save_scores,
            workers=args.workers,
        )
    finally:
        distributed.teardown()
    if ctx.is_main:
        out = Path(args.out) if args.out else Path(args.checkpoints[0]).parent / f"eval_{args.views}"
        path = write_results(results, out)
        if not args.quiet:
            print(format_results(results))
            print(f"results: {path}")
    return 0


# ---------------------------------------------------------------------------------------- predict


def _add_predict(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes of image files with a trained checkpoint",
        description="Decode each image (folders are searched recursively), view it as the checkpoint's "
        "evaluation does (its resize, crop and normalization) and print the top-k class names with "
        "their probabilities, or write them as CSV/JSON. Unreadable files are reported on stderr (and in "
        "the output file) and skipped; the exit code is non-zero only if no image could be predicted.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.pt)")
    p.add_argument("paths", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and/or folders")
    p.add_argument("--top", type=int, default=5, help="classes per image (default: 5)")
    p.add_argument(
        "--views",
        default="single",
        choices=("single", "ten", "dense"),
        help="single: center crop; ten: 4 corners + center, with flips; dense: sliding windows on the "
        "last conv map (paper Sec. 3). Default: single",
    )
    p.add_argument("--scales", help="comma-separated shorter sides (default: the checkpoint's eval resize)")
    p.add_argument("--output", metavar="FILE", help="write FILE.csv or FILE.json instead of printing")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rectifiers.predict import format_records, predict, write_csv, write_json

    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--output must end in .csv or .json, got {args.output}")
    try:
        scales = [int(s) for s in args.scales.split(",")] if args.scales else None
    except ValueError:
        raise ValueError(f"--scales takes comma-separated integers, got {args.scales!r}") from None
    records = predict(
        args.checkpoint,
        args.paths,
        top=args.top,
        views=args.views,
        scales=scales,
        batch_size=args.batch_size,
        device=args.device,
    )
    failed = [r for r in records if r["error"] is not None]
    for r in failed:
        print(f"rectifiers predict: {r['path']}: {r['error']}", file=sys.stderr)
    done = len(records) - len(failed)
    if output is None:
        if done:
            print(format_records(records))
    elif output.suffix.lower() == ".csv":
        write_csv(records, output)
    else:
        write_json(records, output, checkpoint=str(args.checkpoint), views=args.views, scales=scales)
    if output is not None:
        print(f"{done} image(s) predicted, {len(failed)} failed; wrote {output}")
    return 0 if done else 1


# ----------------------------------------------------------------------------------------- export


def _add_export(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX and compare onnxruntime with PyTorch",
        description="Export the checkpoint's model to ONNX (PReLU slopes as (C,1,1) after conv layers, "
        "(C,) after fc layers), check the file with onnx.checker, and print the max abs difference of "
        "onnxruntime's logits from PyTorch's on random inputs and on images of the checkpoint's data. "
        "The input is the normalized image unless --include-normalization. Needs the extra "
        "rectifiers[export] (onnx, onnxruntime, onnxscript).",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file (.pt)")
    p.add_argument("--onnx", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    p.add_argument(
        "--dynamic-size",
        action="store_true",
        help="dynamic input height and width (the SPP layer makes the head size-independent)",
    )
    p.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    p.add_argument(
        "--include-normalization",
        action="store_true",
        help="bake the input normalization into the graph (input: pixel values 0..255)",
    )
    p.add_argument("--samples", type=int, default=8, help="real images to compare on (default: 8)")
    p.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="exit with status 1 if the max abs difference exceeds this (default: 1e-4)",
    )
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from rectifiers.export import export_checkpoint

    try:
        report = export_checkpoint(
            args.checkpoint,
            args.onnx,
            dynamic_size=args.dynamic_size,
            opset=args.opset,
            include_normalization=args.include_normalization,
            samples=args.samples,
        )
    except ImportError as err:
        print(f"rectifiers export: error: {err}", file=sys.stderr)
        return 2
    print(report)
    if not report.max_abs_diff <= args.atol:
        print(
            f"rectifiers export: max abs difference {report.max_abs_diff:.3g} exceeds --atol {args.atol:g}",
            file=sys.stderr,
        )
        return 1
    return 0


# -------------------------------------------------------------------------------------- reproduce


def _add_reproduce(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-measure a table or figure of the paper, our numbers beside the paper's",
        description="Run one experiment of the paper (see --list) and write OUT/NAME/results.json (numbers, "
        "config, seeds, git revision, torch version, machine), table.md (the paper's numbers beside ours, "
        "with this command) and NAME.png where the paper has a figure.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="the experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and their presets, then exit")
    p.add_argument(
        "--preset",
        default="quick",
        choices=("smoke", "quick", "full"),
        help="smoke: seconds; quick: about a minute on 2 CPU cores (default); full: what the README reports",
    )
    p.add_argument(
        "--data",
        help="data spec for the experiments that train (default: CIFAR-10 from the shared data folder when "
        "present, else mnist5k)",
    )
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--seeds", type=int, help="number of seeds (random draws for variance)")
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from rectifiers.experiments import PRESETS, describe, list_experiments, run_experiment

    if args.list:
        for name in list_experiments():
            info = describe(name)
            print(f"{name:14}  {info['title']} [{info['paper']}]")
            for preset in PRESETS:
                print(f"{'':16}{preset:6} {info['presets'][preset]}")
        return 0
    if not args.name:
        raise ValueError(f"name an experiment ({', '.join(list_experiments())}) or pass --list")
    table = run_experiment(
        args.name,
        args.preset,
        data=args.data,
        out=args.out,
        seeds=args.seeds,
        say=lambda text: print(text, file=sys.stderr, flush=True),
    )
    print(table.read_text())
    print(f"results: {table.parent}")
    return 0


# ------------------------------------------------------------------------------------------ bench


def _add_bench(sub: _SubParsers) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: PReLU op vs ReLU, training step vs a plain loop, peak memory, loader vs step",
        description="Time the PReLU op against ReLU and torch's PReLU, the trainer's step against a plain "
        "fp32 PyTorch loop (PReLU and ReLU nets), each variant's peak RSS, and the loader against the "
        "step; compared variants run interleaved in one process and medians are reported, with the "
        "machine's measured matmul peak. See benchmarks/RESULTS.md.",
    )
    p.add_argument("what", nargs="?", default="all", choices=("prelu", "step", "loader", "all"))
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per variant (default: 10)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--shape", default="64,64,56,56", help="prelu: input shape, channels on dim 1")
    p.add_argument("--models", default="net14,net22,net30", help="step: comma-separated models")
    p.add_argument("--presets", default="mnist,cifar10", help="step: sizes of these presets")
    p.add_argument("--batch", type=int, default=128, help="step and loader batch (default: 128)")
    p.add_argument("--no-memory", action="store_true", help="step: skip the peak-RSS subprocesses")
    p.add_argument("--data-root", default="../shared/data", help="loader: folder holding cifar10/ etc.")
    p.add_argument("--json", metavar="PATH", help="also write every row to this JSON file")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from rectifiers.bench_step import run_suite

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    try:
        shape = [int(v) for v in args.shape.split(",")]
    except ValueError:
        raise ValueError(f"--shape takes comma-separated integers, got {args.shape!r}") from None
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
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


_SUBCOMMANDS: tuple[Callable[[_SubParsers], None], ...] = (
    _add_train,
    _add_models,
    _add_init_report,
    _add_eval,
    _add_predict,
    _add_export,
    _add_reproduce,
    _add_bench,
)
