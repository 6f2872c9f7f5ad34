"""Helpers shared by the subcommand modules of `rectifiers.cli`."""

from __future__ import annotations

import argparse

from rectifiers.views import VIEWS

SubParsers = argparse._SubParsersAction  # the object add_subparsers() returns


def parse_ints(text: str, flag: str) -> list[int]:
    """`"256,384,480"` -> `[256, 384, 480]`; anything else is a `ValueError` naming `flag`."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, got {text!r}") from None


def add_view_arguments(p: argparse.ArgumentParser, scales_help: str) -> None:
    """``--views``, ``--scales`` and ``--flip/--no-flip``, as `rectifiers eval` and `rectifiers
    predict` both take them."""
    p.add_argument(
        "--views",
        default="single",
        choices=VIEWS,
        help="single: center crop; ten: 4 corners + center, and their mirrors; dense: sliding windows "
        "on the last conv map, of the image and its mirror (paper Sec. 3). Default: single",
    )
    p.add_argument("--scales", help=scales_help)
    p.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add mirrored views to ten and dense (default: only if the checkpoint trained with "
        "data.flip > 0; a model that never saw a mirror is not shown one)",
    )
