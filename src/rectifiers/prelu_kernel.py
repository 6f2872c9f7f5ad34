"""A fused CPU kernel for PReLU (paper Eq. 1-3), compiled on first use and cached.

Why: ATen's PReLU backward writes the slope gradient's summand g·y to a full-size temporary before
reducing it, so `nn.PReLU` costs several times ReLU on a CPU. Here the backward is one pass that
reads y and ∂E/∂f, writes ∂E/∂y and accumulates Eq. 2's per-channel sum in registers (ReLU's memory
traffic); the forward is one pass too. Outputs and input gradients are bit-identical to
`prelu_reference` (the slope rounded to the input's dtype, a·y and a·g rounded once); the slope
gradient is summed in fixed chunks that depend only on the tensor's size, never the thread count,
so results are reproducible.

With every slope in [2^-20, 2^20] the backward can run from the output f instead of y
(``from_output``): f > 0 exactly where y > 0 and Σ g·min(y, 0) = Σ g·min(f, 0) / a_c, so PReLU keeps
no tensor of its own, as ReLU does (`rectifiers.prelu`'s ``save_output``).

``prelu_kernel.cpp`` beside this module is plain C++ with OpenMP (no torch headers, so it compiles
quickly), built with ``$CXX`` or ``c++`` into `cache_dir()` under a hash of its inputs and called
through ctypes. A dense tensor is ``outer`` blocks of C channel runs of ``inner`` elements: NCHW is
(N, C, H·W), channels_last (N·H·W, C, 1). `load()` returns None (warning once) without a compiler or
on a failed build, and `rectifiers.prelu` uses ATen's kernel; ``RECTIFIERS_NO_KERNEL=1`` forces that.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rectifiers.atomic_file import replacing
from rectifiers.machine import cpu_flags, cpu_model
from rectifiers.runtime import cache_root

__all__ = ["DTYPES", "PReLUKernel", "cache_dir", "load", "needs_build"]

# dtype codes shared with the C++ source
DTYPES: dict[torch.dtype, int] = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}

# The kernel's C++ source, shipped beside this module as package data.
SOURCE = Path(__file__).with_name("prelu_kernel.cpp")

# -O3 and the host's vector ISA (-march=native); -fopenmp for the threads, which then share the
# OpenMP runtime torch itself loaded (same soname, libgomp.so.1).
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17")
# Built twice: bfloat16 on 512-bit vectors where the CPU has them (gcc's -march=native default is
# 256), matching ATen's relu; float32/float64 keep 256-bit ones, faster on page-faulting outputs.
_VARIANTS = {"narrow": (), "wide": ("-mprefer-vector-width=512",)}
_WIDE_DTYPES = (torch.bfloat16,)
_ABI = 2


def cache_dir() -> Path:
    """Where built kernels are kept (under `runtime.cache_root()`), one subfolder per build."""
    return cache_root() / "kernels"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


def _library_paths(compiler: str) -> dict[str, Path]:
    """Variant name -> its cached library, in a folder named by the hash of the build's inputs: the
    source's text, not its path, so a reinstall reuses the build; the CPU model and ISA flags, since
    -march=native code must not run on another CPU sharing the cache."""
    source = SOURCE.read_text()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    flags = " ".join(_FLAGS) + repr(sorted(_VARIANTS.items()))
    inputs = [source, flags, compiler, version, cpu_model(), *cpu_flags()]
    folder = cache_dir() / hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]
    return {name: folder / f"libprelu_cpu_{name}.so" for name in _VARIANTS}


def _build(compiler: str) -> dict[str, Path]:
    paths = _library_paths(compiler)
    for name, extra in _VARIANTS.items():
        target = paths[name]
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Processes racing here (DDP ranks, test workers) each get a complete library, and the last
        # rename wins harmlessly.
        with replacing(target) as tmp:
            # The packaged file itself is compiled, so a compiler error names its lines.
            cmd = [compiler, *_FLAGS, *extra, str(SOURCE), "-o", str(tmp)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:  # the first errors are the cause; the rest often follow from them
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()[:2000]}")
    return paths


class PReLUKernel:
    """The compiled libraries, their entry points typed for ctypes and picked by dtype."""

    def __init__(self, paths: dict[str, Path]) -> None:
        i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
        entry: dict[str, tuple[Any, Any]] = {}
        for name, path in paths.items():
            lib = ctypes.CDLL(str(path))
            if lib.rectifiers_prelu_abi() != _ABI:
                raise RuntimeError(f"{path} has another ABI version")
            forward, backward = lib.rectifiers_prelu_forward, lib.rectifiers_prelu_backward
            forward.argtypes = [i32, ptr, ptr, i32, ptr, i64, i64, i64, i32]
            backward.argtypes = [i32, ptr, ptr, ptr, i32, ptr, ptr, i64, i64, i64, i32, i32]
            forward.restype = backward.restype = i32
            entry[name] = (forward, backward)
        self._entry = {dtype: entry["wide" if dtype in _WIDE_DTYPES else "narrow"] for dtype in DTYPES}

    def forward(self, x: Tensor, weight: Tensor, y: Tensor, blocks: tuple[int, int, int]) -> bool:
        """y = PReLU(x) for dense ``x`` and ``y`` of the same strides; ``blocks`` = (outer, C, inner).

        Returns whether the backward can run from ``y`` instead of ``x`` (every slope in
        [2^-20, 2^20]: y > 0 exactly where x > 0, and x = y / a elsewhere)."""
        status = self._entry[x.dtype][0](
            DTYPES[x.dtype],
            x.data_ptr(),
            y.data_ptr(),
            DTYPES[weight.dtype],
            weight.data_ptr(),
            *blocks,
            torch.get_num_threads(),
        )
        if status == 1:
            raise RuntimeError(f"prelu kernel: unsupported dtypes {x.dtype}, {weight.dtype}")
        return status == 0

    def backward(
        self,
        src: Tensor,
        weight: Tensor,
        grad: Tensor,
        grad_input: Tensor | None,
        grad_weight: Tensor | None,
        blocks: tuple[int, int, int],
        from_output: bool = False,
    ) -> None:
        """Fill ``grad_input`` (strides of ``src``) and ``grad_weight`` (C slopes), either may be None.
        ``src`` is x, or y with ``from_output`` (only where `forward` returned True)."""
        status = self._entry[src.dtype][1](
            DTYPES[src.dtype],
            src.data_ptr(),
            grad.data_ptr(),
            None if grad_input is None else grad_input.data_ptr(),
            DTYPES[weight.dtype],
            weight.data_ptr(),
            None if grad_weight is None else grad_weight.data_ptr(),
            *blocks,
            torch.get_num_threads(),
            int(from_output),
        )
        if status:
            raise RuntimeError(f"prelu kernel: unsupported dtypes {src.dtype}, {weight.dtype}")


def needs_build() -> bool:
    """Whether the next `load()` compiles the kernel (its first use with this compiler and CPU)."""
    if load.cache_info().currsize or _disabled():
        return False
    compiler = _compiler()
    if compiler is None or not SOURCE.is_file():  # `load` then warns and falls back
        return False
    return not all(path.is_file() for path in _library_paths(compiler).values())


def _disabled() -> bool:
    off = os.environ.get("RECTIFIERS_NO_KERNEL", "") not in ("", "0")
    return off or sys.platform not in ("linux", "darwin")


@functools.cache
def load() -> PReLUKernel | None:
    """The compiled kernel (built on the first call of a process if the cache lacks it), or None
    where it cannot be had: ``RECTIFIERS_NO_KERNEL=1``, not Linux/macOS, no C++ compiler, a failed
    build. A failure warns once; callers then use ATen's PReLU, which gives the same results."""
    if _disabled():
        return None
    compiler = _compiler()
    try:
        if compiler is None:
            raise RuntimeError("no C++ compiler found ($CXX, c++, g++, clang++)")
        return PReLUKernel(_build(compiler))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            "rectifiers: building the fused PReLU kernel failed, using ATen's PReLU (slower backward, "
            f"same results): {err}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
