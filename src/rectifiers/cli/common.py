"""Helpers shared by the subcommand modules of `rectifiers.cli`."""

from __future__ import annotations

import argparse

SubParsers = argparse._SubParsersAction  # the object add_subparsers() returns


def parse_ints(text: str, flag: str) -> list[int]:
    """`"256,384,480"` -> `[256, 384, 480]`; anything else is a `ValueError` naming `flag`."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated integers, got {text!r}") from None
