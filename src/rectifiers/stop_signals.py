"""SIGINT/SIGTERM as a request to stop training at the next step, after a checkpoint.

The first SIGINT or SIGTERM only records the signal (`StopSignals.signum`); the training loop polls
it, raises `TrainingStopped` and saves a checkpoint before it returns. A second signal raises
KeyboardInterrupt at once.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class TrainingStopped(Exception):
    """Raised inside the loop when SIGINT/SIGTERM asks the run to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Records the first SIGINT/SIGTERM received while `installed()` is active."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received, None until then

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM inside the block; the previous handlers come back after it.

        Outside the main thread Python cannot install handlers, so the block runs with the signals
        left alone.
        """
        try:
            previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _request_stop(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum
