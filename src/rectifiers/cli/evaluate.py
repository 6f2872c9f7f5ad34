"""`rectifiers eval`: score checkpoints single-view, 10-view or dense multi-scale, alone or as an ensemble."""

from __future__ import annotations

import argparse

from rectifiers.cli.common import SubParsers, add_view_arguments, parse_ints


def add(sub: SubParsers) -> None:
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
    add_view_arguments(
        p,
        scales_help="comma-separated shorter sides, scores averaged over them, e.g. 256,384,480 "
        "(default: the checkpoint's data.eval_resize)",
    )
    p.add_argument("--stride", type=int, default=1, help="dense: window step on the conv map (default: 1)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--out", help="output folder (default: eval_<views> beside the first checkpoint)")
    p.add_argument("--save-scores", action="store_true", help="also write per-image scores to DIR/scores.pt")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes for image files")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rectifiers import distributed
    from rectifiers.eval_results import format_results, write_results
    from rectifiers.evaluate import EvalOptions, evaluate

    scales = parse_ints(args.scales, "--scales") if args.scales else ()
    ctx = distributed.setup(args.device)
    try:
        options = EvalOptions(
            split=args.split,
            views=args.views,
            scales=tuple(scales),
            batch_size=args.batch_size,
            stride=args.stride,
            device=ctx.device,
            save_scores=args.save_scores,
            workers=args.workers,
            flip=args.flip,
        )
        results = evaluate(args.checkpoints, args.data, options)
    finally:
        distributed.teardown()
    if ctx.is_main:
        out = Path(args.out) if args.out else Path(args.checkpoints[0]).parent / f"eval_{args.views}"
        path = write_results(results, out)
        if not args.quiet:
            print(format_results(results))
            print(f"results: {path}")
    return 0
