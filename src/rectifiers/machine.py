"""What this process runs on, as far as speed goes: the CPU model and its bf16 hardware.

A benchmark figure or a precision choice is only true for the CPU it came from, and oneDNN can be
capped below what the CPU has (`ONEDNN_MAX_CPU_ISA`), so both are read here.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CpuIsa", "cpu_flags", "cpu_isa", "cpu_model", "cpu_wait_us", "onednn_has_bf16", "versions"]


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's ``key : value`` lines of /proc/cpuinfo, read once per process ({} where
    there is none)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]  # a blank line ends each processor
    except OSError:
        return {}
    lines = (line.partition(":") for line in first.splitlines())
    return {key.strip(): value.strip() for key, sep, value in lines if sep}


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it (from /proc/cpuinfo), else the platform's word."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_wait_us() -> int | None:
    """Microseconds, since boot, during which some runnable task waited for a core (Linux's CPU
    pressure, /proc/pressure/cpu "some total"); None where the kernel does not report it. Its rise
    across a timing says whether other work was competing for the cores."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(first.rpartition("total=")[2])
    except (OSError, IndexError, ValueError):
        return None


def cpu_flags() -> list[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (``avx512_bf16``, ``amx_bf16``, ...); empty
    where there is no /proc/cpuinfo."""
    return _cpuinfo().get("flags", "").split()


@dataclass(frozen=True)
class CpuIsa:
    """The CPU's bf16 hardware, and the cap oneDNN is run under."""

    amx: bool  # the CPU has AMX bf16 tiles (cpuinfo flag amx_bf16)
    avx512_bf16: bool  # the CPU has AVX512_BF16 dot products
    max_isa: str | None  # ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA) when set

    @property
    def amx_usable(self) -> bool:
        """AMX is there and oneDNN may use it: no cap, or a cap at an AMX level."""
        cap = (self.max_isa or "ALL").upper()
        return self.amx and (cap in ("ALL", "DEFAULT") or "AMX" in cap)

    def describe(self) -> str:
        """``AMX no, AVX512_BF16 yes`` and, when set, ``, ONEDNN_MAX_CPU_ISA=AVX2``."""
        text = f"AMX {'yes' if self.amx else 'no'}, AVX512_BF16 {'yes' if self.avx512_bf16 else 'no'}"
        return text + (f", ONEDNN_MAX_CPU_ISA={self.max_isa}" if self.max_isa else "")


def cpu_isa() -> CpuIsa:
    """The CPU flags (/proc/cpuinfo, else torch's cpuinfo) and this process's oneDNN cap."""
    flags = cpu_flags()
    if flags:
        amx, avx512_bf16 = "amx_bf16" in flags, "avx512_bf16" in flags
    else:
        amx, avx512_bf16 = torch.cpu._is_amx_tile_supported(), torch.cpu._is_avx512_bf16_supported()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or None
    return CpuIsa(amx=amx, avx512_bf16=avx512_bf16, max_isa=cap)


def onednn_has_bf16() -> bool:
    """Whether oneDNN has bf16 kernels here, native or emulated: its own answer, which honours
    ONEDNN_MAX_CPU_ISA (True under AVX512_CORE, which emulates bf16; False under AVX2, where a bf16
    matmul falls back to a loop hundreds of times slower)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def versions() -> dict[str, str]:
    """The versions of rectifiers, torch and Python this process runs, which a checkpoint, a result
    and a benchmark figure record."""
    from rectifiers import __version__  # the package imports this module while it starts

    return {"rectifiers": __version__, "torch": str(torch.__version__), "python": platform.python_version()}
