"""Process-wide settings: the cache folder (`cache_root`, for built PReLU kernels and measured
precision choices), glibc's allocator keeping freed memory, and torch flags put back after a run.

A training step frees and reallocates the same large tensors every step; by default glibc returns
them to the OS (``munmap``, heap trimming), so each step faults in and zeroes fresh pages again, a
sizeable share of a CPU step (benchmarks/RESULTS.md, "Peak memory"). `keep_freed_memory` keeps them in
the heap; resident size then stays at its peak. It cannot be undone, so only `rectifiers train`
applies it; `fit` called from a user's own process leaves the allocator alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["cache_root", "keep_freed_memory", "torch_flags_kept"]

# mallopt parameter (malloc.h) -> the value set
_MALLOPT = {
    -3: 32 * 1024 * 1024,  # M_MMAP_THRESHOLD: glibc's upper limit on 64-bit (HEAP_MAX_SIZE / 2)
    -1: 2**31 - 1,  # M_TRIM_THRESHOLD: the largest int, never trim
}


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
    return all(mallopt(param, value) for param, value in _MALLOPT.items())


@contextlib.contextmanager
def torch_flags_kept() -> Iterator[None]:
    """Inside the block torch's deterministic-algorithm and cuDNN flags may change; after it they are
    back to what they were (a deterministic run must not leave a notebook's later work deterministic)."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    benchmark, cudnn_deterministic = cudnn.benchmark, cudnn.deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        cudnn.benchmark, cudnn.deterministic = benchmark, cudnn_deterministic
