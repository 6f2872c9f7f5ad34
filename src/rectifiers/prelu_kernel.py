"""A fused CPU kernel for PReLU (paper Eq. 1-3), compiled on first use and cached.

Why: ATen's PReLU backward writes the slope gradient's summand g·y to a full-size temporary before it
reduces it over N·H·W, so `nn.PReLU` costs several times ReLU's forward+backward on a CPU
(benchmarks/RESULTS.md). Here the backward is one pass that reads y and ∂E/∂f, writes ∂E/∂y and
accumulates Eq. 2's per-channel sum in registers,

    ∂E/∂y_i = ∂E/∂f_i · (1 if y_i > 0 else a_c)          (Eq. 1 differentiated)
    ∂E/∂a_c = Σ_{i in channel c} ∂E/∂f_i · min(y_i, 0)    (Eq. 2-3)

which is the memory traffic of ReLU's backward (two reads, one write), and the forward is one pass
like ReLU's. The arithmetic mirrors `prelu_reference`: the slope is first rounded to the input's
dtype, a·y and a·g are rounded once (round-to-nearest-even for bfloat16), so outputs and input
gradients are bit-identical to it; the slope gradient is a sum whose order differs, accumulated in
float (float64 for float64 inputs) within fixed chunks and in float64 across chunks. The chunks depend
only on the tensor's size, never on the thread count, so results are reproducible.

The backward can also run from the output f instead of the input y (`PReLUKernel.backward`'s
``from_output``) when every slope lies in [2^-20, 2^20]: then f > 0 exactly where y > 0, and
Σ g·min(y, 0) = Σ g·min(f, 0) / a_c. A network keeps f anyway (the next convolution needs it), so
with `rectifiers.prelu`'s ``save_output`` PReLU then holds no tensor of its own, as ReLU does; the
input gradient stays bit-identical and the slope gradient differs from Σ g·y by the one rounding of
a·y in each term.

The source, ``prelu_kernel.cpp`` beside this module, is plain C++ with OpenMP (no torch headers, so it
compiles quickly), built with the system compiler (``$CXX`` or ``c++``) into
``~/.cache/rectifiers/kernels/<hash of the source text, flags, compiler and CPU>/`` (or
``$RECTIFIERS_CACHE``) and called through ctypes on the tensors' data pointers. A dense tensor is seen
as ``outer`` blocks of C channel runs of ``inner`` elements: NCHW gives (N, C, H·W), channels_last
(N·H·W, C, 1). `load()` returns None (and warns once) where no compiler is found or the build fails;
`rectifiers.prelu` then uses ATen's kernel. Set ``RECTIFIERS_NO_KERNEL=1`` to force that fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

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
# The source is built twice. bfloat16 runs on full-width AVX-512 vectors where the CPU has them
# (gcc's default for -march=native is 256 bits): its loops then match ATen's relu. float32 and
# float64 keep 256-bit vectors, which measured faster on freshly allocated (page-faulting) outputs
# and no slower otherwise (benchmarks/RESULTS.md).
_VARIANTS = {"narrow": (), "wide": ("-mprefer-vector-width=512",)}
_WIDE_DTYPES = (torch.bfloat16,)
_ABI = 2


def cache_dir() -> Path:
    """Where built kernels are kept: ``$RECTIFIERS_CACHE``, else ``$XDG_CACHE_HOME/rectifiers``,
    else ``~/.cache/rectifiers``; each build in a subfolder named by the hash of its inputs."""
    return cache_root() / "kernels"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


def _cpu_signature() -> str:
    """The CPU model and ISA flags: -march=native code must not run on another CPU sharing the cache."""
    return "\n".join([cpu_model(), *cpu_flags()])


def _library_paths(compiler: str) -> dict[str, Path]:
    """Variant name -> where its library is cached, in a folder named by the hash of the build's inputs
    (the source's text, not its path: a reinstall of the same source reuses the build)."""
    source = SOURCE.read_text()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout
    flags = " ".join(_FLAGS) + repr(sorted(_VARIANTS.items()))
    inputs = [source, flags, compiler, version, _cpu_signature()]
    folder = cache_dir() / hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]
    return {name: folder / f"libprelu_cpu_{name}.so" for name in _VARIANTS}


def _build(compiler: str) -> dict[str, Path]:
    """Build every variant of the library (or find it in the cache); variant name -> path."""
    paths = _library_paths(compiler)
    for name, extra in _VARIANTS.items():
        target = paths[name]
        if target.is_file():
            continue
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        # Build to a private name, then rename: processes racing here (DDP ranks, test workers)
        # each get a complete library, and the last rename wins harmlessly.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            # The packaged file itself is compiled, so a compiler error names its lines.
            cmd = [compiler, *_FLAGS, *extra, str(SOURCE), "-o", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:  # the first errors are the cause; the rest often follow from them
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()[:2000]}")
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return paths


class PReLUKernel:
    """The compiled libraries, their entry points typed for ctypes and picked by dtype."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
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

        ``src`` is the forward's input x, or its output y with ``from_output`` (only where `forward`
        returned True): the input gradient is the same bit for bit, and the slope gradient is
        Σ_{y<=0} g·y / a, the Σ g·x of Eq. 2 up to one rounding of a·x per term."""
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
    if compiler is None:
        warnings.warn(
            "rectifiers: no C++ compiler found ($CXX, c++, g++, clang++); PReLU uses ATen's slower "
            "backward (same results)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    try:
        return PReLUKernel(_build(compiler))
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            f"rectifiers: building the fused PReLU kernel failed, using ATen's PReLU (same results): {err}",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
