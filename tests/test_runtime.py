"""Process-wide settings (`rectifiers.runtime`): the allocator setting of the loop, the cache root."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rectifiers.runtime import keep_freed_memory

# Each of 16 rounds asks glibc for eight 4 MiB blocks the way torch's CPU allocator does (posix_memalign,
# 64-byte aligned), writes them and frees them, as a training step does with its activations; it prints
# the minor page faults of each round. It calls glibc directly and runs in a fresh interpreter, so that
# no tensor bookkeeping or earlier test pins the heap's top and decides the count.
_FAULTS_PER_ROUND = """
import ctypes, ctypes.util, json, resource, sys
from rectifiers.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
BLOCK = 4 * 1024 * 1024
def one_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [ctypes.c_void_p() for _ in range(8)]
    for block in blocks:
        assert libc.posix_memalign(ctypes.byref(block), 64, BLOCK) == 0
        ctypes.memset(block, 1, BLOCK)
    for block in blocks:
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps([one_round() for _ in range(16)]))
"""


def _faults_per_round(mode: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_ROUND, mode], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    # Control, glibc's default: its threshold adapts so that 4 MiB blocks come from the heap, but 32 MiB
    # freed at the heap's top exceeds the trim threshold (twice the largest block), so it goes back to
    # the OS and every round faults all 8,192 pages in again.
    default = _faults_per_round("default")
    if min(default[-8:]) < 8000:  # another C library or tuning: the comparison would show nothing
        pytest.skip(f"this allocator keeps freed blocks by default: faults per round {default}")
    # Kept: the first rounds still grow the heap (posix_memalign asks for a little more than a freed
    # block of the same size); once freed neighbours have merged, every round reuses memory.
    kept = _faults_per_round("keep")
    assert max(kept[-8:]) < 200, kept
    assert keep_freed_memory() is True


def test_one_cache_root_for_kernels_and_measurements(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from rectifiers import prelu_kernel
    from rectifiers.runtime import cache_root

    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine" and prelu_kernel.cache_dir() == cache_root() / "kernels"
    monkeypatch.delenv("RECTIFIERS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "rectifiers"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "rectifiers"


def test_every_cache_lives_under_the_one_cache_root(tmp_path, monkeypatch) -> None:
    import numpy as np
    from PIL import Image

    from rectifiers import data, prelu_kernel, runtime

    monkeypatch.delenv("RECTIFIERS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = runtime.cache_root()
    assert root == tmp_path / "xdg" / "rectifiers"
    folder = tmp_path / "images" / "train" / "cat"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "0.png")
    data.open_dataset(f"folder:{tmp_path / 'images'}", "train")
    written = [p for p in (tmp_path / "xdg").rglob("*") if p.is_file()]
    assert written and all(p.is_relative_to(root) for p in written)
    assert prelu_kernel.cache_dir().is_relative_to(root)


def test_the_suite_keeps_its_caches_out_of_the_users_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from rectifiers import prelu_kernel
    from rectifiers.runtime import cache_root

    # Kernel builds, data listings and precision calibrations of the tests go to the session's folder,
    # from collection on: test modules load the kernel when imported.
    session = cache_root()
    compiler = prelu_kernel._compiler()
    if prelu_kernel.load() is not None and compiler is not None:
        assert all(path.is_file() for path in prelu_kernel._library_paths(compiler).values())
    monkeypatch.delenv("RECTIFIERS_CACHE")
    assert not session.is_relative_to(cache_root())  # the user's (XDG) cache
