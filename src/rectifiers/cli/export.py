"""`rectifiers export`: ONNX export of a checkpoint, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rectifiers.cli.common import SubParsers


def add(sub: SubParsers) -> None:
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
    p.add_argument(
        "--onnx",
        metavar="FILE.onnx",
        help="the ONNX file to write (default: beside the checkpoint, e.g. runs/default/best.onnx)",
    )
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rectifiers.export import export_checkpoint

    # The default keeps the file with its checkpoint, in the run directory, not in the working tree.
    onnx_path = args.onnx or str(Path(args.checkpoint).with_suffix(".onnx"))
    try:
        report = export_checkpoint(
            args.checkpoint,
            onnx_path,
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
