"""`rectifiers reproduce`: re-measure one of the paper's tables or figures beside the paper's numbers."""

from __future__ import annotations

import argparse
import sys

from rectifiers.cli.common import SubParsers
from rectifiers.experiments.context import PRESETS


def add(sub: SubParsers) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-measure a table or figure of the paper, our numbers beside the paper's",
        description="Run one experiment of the paper (see --list) and write OUT/NAME/results.json (numbers, "
        "config, seeds, git revision, torch version, machine), table.md (the paper's numbers beside ours, "
        "with this command) and NAME.png where the paper has a figure. Training runs are kept under "
        "OUT/NAME/runs/: run the same command again after a stop or a crash and it reuses the finished runs, "
        "continues the interrupted one, then writes the tables.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="the experiment (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and their presets, then exit")
    p.add_argument(
        "--preset",
        default="quick",
        choices=PRESETS,
        help="smoke: seconds; quick: about a minute on 2 CPU cores (default); full: what the README reports",
    )
    p.add_argument(
        "--data",
        help="data spec for the experiments that train (default: CIFAR-10 from $RECTIFIERS_CIFAR10 or the "
        "shared data folder, else mnist5k, announced as a fallback in the output and in table.md)",
    )
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--seeds", type=int, help="number of seeds (random draws for variance)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete the training runs of an earlier invocation and start over (default: reuse the "
        "finished runs kept under OUT/NAME/runs/, continue an interrupted one from its checkpoint)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rectifiers.experiments import list_experiments, load, run_experiment
    from rectifiers.experiments.runs import RunNotFinished

    if args.list:
        for name in list_experiments():
            module = load(name)
            print(f"{name:14}  {module.TITLE} [{module.PAPER}]")
            for preset in PRESETS:
                print(f"{'':16}{preset:6} {module.PRESETS[preset].get('summary', '')}")
        return 0
    if not args.name:
        raise ValueError(f"name an experiment ({', '.join(list_experiments())}) or pass --list")
    try:
        table = run_experiment(
            args.name,
            args.preset,
            data=args.data,
            out=args.out,
            seeds=args.seeds,
            say=lambda text: print(text, file=sys.stderr, flush=True),
            fresh=args.fresh,
        )
    except RunNotFinished as stopped:
        print(f"rectifiers reproduce: {stopped}", file=sys.stderr)
        return 1
    print(table.read_text())
    print(f"results: {table.parent}")
    return 0
