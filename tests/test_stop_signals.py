"""StopSignals: the first SIGINT/SIGTERM is recorded, a second stops at once, handlers come back."""

from __future__ import annotations

import os
import signal

import pytest

from rectifiers.stop_signals import StopSignals, TrainingStopped


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_is_recorded_second_interrupts(signum: int) -> None:
    before = signal.getsignal(signum)
    stop = StopSignals()
    with stop.installed():
        os.kill(os.getpid(), signum)
        assert stop.signum == signum
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signum) is before


def test_training_stopped_names_the_signal() -> None:
    err = TrainingStopped(signal.SIGTERM)
    assert err.signum == signal.SIGTERM
    assert "SIGTERM" in str(err)
