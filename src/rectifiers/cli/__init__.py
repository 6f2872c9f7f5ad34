"""`rectifiers <subcommand>`: thin wrappers over the library's functions.

One module per subcommand, each with `add(subparsers)` (arguments, sets `func`) and `run(args)` (does
the work, returns an exit code). Work modules are imported inside `run` so that `rectifiers --help`
stays fast. A new subcommand's module joins `_SUBCOMMANDS` (the order of `rectifiers --help`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rectifiers import __version__, distributed
from rectifiers.cli import bench, evaluate, export, init_report, models, predict, reproduce, train

_SUBCOMMANDS = (train, models, init_report, evaluate, predict, export, reproduce, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rectifiers",
        description="PReLU, He initialization and the PReLU-nets of 'Delving Deep into Rectifiers'.",
    )
    parser.add_argument("--version", action="version", version=f"rectifiers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _SUBCOMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the flush at exit
    except (ValueError, FileNotFoundError) as err:
        # Bad input of any kind ends in one clear line, not a traceback.
        print(f"rectifiers {args.command}: error: {err}", file=sys.stderr)
        code = 2
    except BrokenPipeError:
        # The reader of stdout stopped early (`| head`): quietly, with nothing left to flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    return distributed.end_process(code)  # returns, except in a torchrun process (see there)
