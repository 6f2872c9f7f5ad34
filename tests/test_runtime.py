"""Process-wide settings (`rectifiers.runtime`): the allocator setting of the loop, the cache root."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from rectifiers.runtime import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent

    def faults_of_one_round() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.empty(4 * 1024 * 1024)  # 16 MiB, above glibc's default mmap threshold
        t.fill_(1.0)  # touch every page
        del t
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    # 16 MiB is 4,096 pages, which a fresh mmap faults in again on every round. In the heap, glibc's
    # posix_memalign asks for a little more than a freed block of the same size, so the first rounds
    # still grow the heap; once freed neighbours have merged, every round reuses memory.
    rounds = [faults_of_one_round() for _ in range(16)]
    assert max(rounds[-4:]) < 200, rounds


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
    from rectifiers import data, prelu_kernel, runtime

    monkeypatch.delenv("RECTIFIERS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = runtime.cache_root()
    assert root == tmp_path / "rectifiers"
    assert data._cache_dir(None) == root
    assert prelu_kernel.cache_dir().is_relative_to(root)
