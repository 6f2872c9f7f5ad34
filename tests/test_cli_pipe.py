"""The command line's output piped into a reader that stops early (`rectifiers ... | head`)."""

from __future__ import annotations

import subprocess
import sys


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "rectifiers", "reproduce", "--list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    child.stdout.close()  # as `head` does once it has its lines; every write then fails
    _, err = child.communicate(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert child.returncode == 1  # as Python's own note on SIGPIPE advises
