"""`rectifiers init-report`: per-layer init stds (Eq. 10/14/15) and measured signal variance vs theory."""

from __future__ import annotations

import argparse

from rectifiers.cli.common import SubParsers
from rectifiers.init import MODES, SCHEMES
from rectifiers.layers import ACTIVATIONS


def add(sub: SubParsers) -> None:
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
    p.add_argument("--init", default="he", choices=SCHEMES, help="init scheme (default: he)")
    p.add_argument(
        "--init-mode",
        default="fan_out",
        choices=MODES,
        help="fan_in: Eq. 10 (forward); fan_out: Eq. 14 (backward, what the paper trains with; default)",
    )
    # The names this command had before it took train's; kept so that older scripts still run.
    hidden = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
    p.add_argument("--scheme", dest="init", choices=SCHEMES, **hidden)
    p.add_argument("--mode", dest="init_mode", choices=MODES, **hidden)
    p.add_argument("--a", default="auto", help="slope a of Eq. 15, or auto (from each layer's activation)")
    p.add_argument(
        "--std",
        type=float,
        help="a fixed std: the init of --init gaussian, and the std whose attenuation "
        "between --from and --to is reported",
    )
    p.add_argument("--fc-std", help="fixed stds of the Linear layers, e.g. 0.01,0.01,0.001 (the paper's)")
    p.add_argument(
        "--from",
        dest="start",
        help="attenuation: first layer, a name or 1-based number (default: the second conv layer)",
    )
    p.add_argument("--to", dest="end", help="attenuation: last layer (default: the last conv layer)")
    p.add_argument("--act", choices=ACTIVATIONS, help="activation (default: the model's, or relu)")
    p.add_argument("--net", default="mlp", choices=("mlp", "conv"), help="demo: MLP or circular-padded CNN")
    p.add_argument("--depth", type=int, default=30, help="demo: weight layers (default: 30)")
    p.add_argument("--width", type=int, help="demo: units or filters per layer (default: 1024 mlp, 64 conv)")
    p.add_argument("--batch", type=int, help="demo: input batch (default: 128 mlp, 16 conv of 16×16)")
    p.add_argument("--draws", type=int, default=8, help="demo: independent random draws (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="demo: seed of the first draw")
    p.add_argument("--plot", metavar="PATH", help="demo: save the variance-vs-depth figure (PNG)")
    p.add_argument("--markdown", action="store_true", help="print the init table as markdown")
    p.add_argument("--json", metavar="PATH", help="also write the reports as JSON")
    p.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
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
    kwargs = {"scheme": args.init, "mode": args.init_mode, "a": a, "fc_std": fc_std}
    kwargs["std"] = args.std if args.init == "gaussian" else None
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
            gen = None if args.init == "torch" else torch.Generator().manual_seed(seed)
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
            title = f"{args.init} {args.init_mode}: {what}"
            path = (draws if args.draws > 1 else draws.reports[0]).plot(args.plot, title=title)
            print(f"plot: {path}")
    if args.std is not None:
        lines, out["attenuation"] = _attenuation_lines(report, args.std, args.start, args.end)
        print()
        print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0
