"""Process-wide settings: where the project caches what it builds or measures, and glibc's allocator
keeping freed memory (which makes a CPU training loop faster).

`cache_root` is the one folder for built PReLU kernels (`prelu_kernel`) and measured precision
choices (`amp`): ``$RECTIFIERS_CACHE``, else ``$XDG_CACHE_HOME/rectifiers``, else
``~/.cache/rectifiers``.

PyTorch's CPU allocator asks glibc's ``malloc`` for every tensor. By default glibc serves large
blocks (above a threshold that adapts up to 32 MiB) with a fresh ``mmap`` and hands them back with
``munmap`` when freed, and trims the heap's free top back to the OS. A training step allocates and
frees the same activation and gradient tensors every step, so each step touches new pages again:
the kernel must fault in and zero them (measured on the project's 2-core machine: 32,600 minor page
faults and 57 ms of system time per step of net14-small (width 0.5, 32 px, batch 128), about a
sixth of the step's CPU time; see benchmarks/RESULTS.md). `keep_freed_memory` raises the mmap
threshold to its maximum and turns trimming off, so freed blocks stay in the heap and the next
step reuses them: the faults drop to zero. The process's resident size then stays at its peak
instead of dipping between steps; the peak itself does not grow (the benchmark measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from pathlib import Path

__all__ = ["cache_root", "keep_freed_memory"]

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 2**31 - 1  # the largest int: never trim


def cache_root() -> Path:
    """``$RECTIFIERS_CACHE``, else ``$XDG_CACHE_HOME/rectifiers``, else ``~/.cache/rectifiers``."""
    root = os.environ.get("RECTIFIERS_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rectifiers"


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB in the heap for reuse (Linux/glibc only).

    Idempotent and process-wide (DataLoader workers forked later inherit it). Returns whether the
    setting took effect; False on other platforms or C libraries, where it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
