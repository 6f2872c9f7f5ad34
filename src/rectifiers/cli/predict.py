"""`rectifiers predict`: top-k classes of image files with a trained checkpoint."""

from __future__ import annotations

import argparse
import sys

from rectifiers.cli.common import SubParsers, add_view_arguments, parse_ints


def add(sub: SubParsers) -> None:
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
    add_view_arguments(p, scales_help="comma-separated shorter sides (default: the checkpoint's eval resize)")
    p.add_argument("--output", metavar="FILE", help="write FILE.csv or FILE.json instead of printing")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rectifiers.predict import format_records, predict, write_csv, write_json

    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--output must end in .csv or .json, got {args.output}")
    scales = parse_ints(args.scales, "--scales") if args.scales else None
    records = predict(
        args.checkpoint,
        args.paths,
        top=args.top,
        views=args.views,
        scales=scales,
        batch_size=args.batch_size,
        device=args.device,
        flip=args.flip,
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
