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


_SUBCOMMANDS: tuple[Callable[[_SubParsers], None], ...] = ()
