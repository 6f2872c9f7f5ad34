"""`rectifiers models`: the registered models' depth, parameters and multiply-adds (paper Table 3)."""

from __future__ import annotations

import argparse

from rectifiers.cli.common import SubParsers
from rectifiers.layers import ACTIVATIONS
from rectifiers.models import STEMS


def add(sub: SubParsers) -> None:
    p = sub.add_parser(
        "models",
        help="list the models with depth, parameters and multiply-adds",
        description="Every registered model at its default size (built on the meta device, so even "
        "model C costs no memory): depth (conv + fc), parameters, PReLU slopes, multiply-adds per image "
        "(the paper's Table 3 'complexity') and the size of the last conv map. Name models to get "
        "their per-layer tables instead.",
    )
    p.add_argument("names", nargs="*", metavar="MODEL", help="print these models' per-layer tables")
    p.add_argument("--act", default="prelu", choices=ACTIVATIONS, help="activation (default: prelu)")
    p.add_argument("--stem", default="imagenet", choices=STEMS, help="first layers (default: imagenet)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels (default: 224)")
    p.add_argument("--classes", type=int, default=1000, help="classifier outputs (default: 1000)")
    p.add_argument("--width", type=float, default=1.0, help="conv channel multiplier (default: 1)")
    p.add_argument("--fc-width", type=int, help="units of fc1 and fc2 (default: the model's, 4096)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rectifiers.complexity import complexity
    from rectifiers.models import create_model, list_models
    from rectifiers.text_table import aligned_table, markdown_table

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
        print(markdown_table(header, rows, "l" + "r" * (len(header) - 1)))
        return 0
    print(aligned_table(header, rows, left=1, rule=False))
    return 0
