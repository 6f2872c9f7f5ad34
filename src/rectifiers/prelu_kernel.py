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
quickly), built with ``$CXX`` or ``c++``. Its autograd function, ``prelu_autograd.cpp``, is built
against torch's headers and registers the torch op that `rectifiers.prelu_fast` calls: a Python
autograd.Function around the kernel cost a small net's training step 1-6% (measured in
benchmarks/RESULTS.md). Both land in `cache_dir()` under a hash of their inputs; the kernel's entry
points are handed to the op through ctypes. A dense tensor is ``outer`` blocks of C channel runs of
``inner`` elements: NCHW is (N, C, H·W), channels_last (N·H·W, C, 1). `load()` returns None
(warning once) without a compiler or on a failed build, and `rectifiers.prelu` uses ATen's kernel;
``RECTIFIERS_NO_KERNEL=1`` forces that.
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
import warnings
from pathlib import Path

import torch

from rectifiers.atomic_file import replacing
from rectifiers.machine import cpu_flags, cpu_model
from rectifiers.runtime import cache_root

__all__ = ["DTYPES", "PReLUKernel", "cache_dir", "load", "needs_build"]

# dtype codes shared with the C++ source
DTYPES: dict[torch.dtype, int] = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2}

# The C++ sources, shipped beside this module as package data.
SOURCE = Path(__file__).with_name("prelu_kernel.cpp")
AUTOGRAD_SOURCE = Path(__file__).with_name("prelu_autograd.cpp")

# -O3 and the host's vector ISA (-march=native); -fopenmp for the threads, which then share the
# OpenMP runtime torch itself loaded (same soname, libgomp.so.1).
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17")
# Built twice: bfloat16 on 512-bit vectors where the CPU has them (gcc's -march=native default is
# 256), matching ATen's relu; float32/float64 keep 256-bit ones, faster on page-faulting outputs.
_VARIANTS = {"narrow": (), "wide": ("-mprefer-vector-width=512",)}
_WIDE_DTYPES = (torch.bfloat16,)
_ABI = 2
_TORCH = Path(torch.__file__).parent
# The op must match the running torch: its headers, C++ ABI and libraries (C++20 from torch 2.13).
_AUTOGRAD_FLAGS = (
    "-O2",
    "-fPIC",
    "-shared",
    "-std=c++20",
    f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
    f"-I{_TORCH / 'include'}",
)
_AUTOGRAD_LIBS = (f"-L{_TORCH / 'lib'}", f"-Wl,-rpath,{_TORCH / 'lib'}", "-lc10", "-ltorch_cpu")


def cache_dir() -> Path:
    """Where built kernels are kept (under `runtime.cache_root()`), one subfolder per build."""
    return cache_root() / "kernels"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")


@functools.cache
def _compiler_version(compiler: str) -> str:
    # Asked once per process: a run's start checks `needs_build` and then loads.
    return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False).stdout


def _library_paths(compiler: str) -> dict[str, Path]:
    """Library name -> its cached file ("narrow" and "wide" kernels, the "autograd" op), in a folder
    named by the hash of the build's inputs: the sources' text, not their path, so a reinstall reuses
    the build; the CPU model and ISA flags, since -march=native code must not run on another CPU
    sharing the cache; torch's version and place, which the op is built against."""
    sources = [path.read_text() for path in (SOURCE, AUTOGRAD_SOURCE)]
    version = _compiler_version(compiler)
    flags = " ".join(_FLAGS + _AUTOGRAD_FLAGS) + repr(sorted(_VARIANTS.items()))
    inputs = [*sources, flags, compiler, version, cpu_model(), *cpu_flags(), torch.__version__]
    folder = cache_dir() / hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]
    return {name: folder / f"libprelu_cpu_{name}.so" for name in (*_VARIANTS, "autograd")}


def _namespace(op_library: Path) -> str:
    """The op's torch namespace, one per library file: a process may load two builds (two caches),
    and torch refuses a namespace registered twice."""
    return "rectifiers_" + hashlib.sha256(str(op_library).encode()).hexdigest()[:16]


def _build_command(compiler: str, name: str, paths: dict[str, Path], out: Path) -> list[str]:
    # The packaged files themselves are compiled, so a compiler error names their lines.
    if name == "autograd":
        define = f"-DRECTIFIERS_NS={_namespace(paths[name])}"
        return [compiler, *_AUTOGRAD_FLAGS, define, str(AUTOGRAD_SOURCE), "-o", str(out), *_AUTOGRAD_LIBS]
    return [compiler, *_FLAGS, *_VARIANTS[name], str(SOURCE), "-o", str(out)]


def _stop(build: subprocess.Popen[str]) -> None:
    build.kill()  # a no-op on a build that has finished
    build.wait()


def _build(compiler: str) -> dict[str, Path]:
    """Build the missing libraries side by side (the op takes ~15 s, each kernel ~4 s)."""
    paths = _library_paths(compiler)
    missing = [name for name, path in paths.items() if not path.is_file()]
    if not missing:
        return paths
    next(iter(paths.values())).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # Processes racing here (DDP ranks, test workers) each get complete libraries, and the last
        # rename wins harmlessly.
        builds = []
        for name in missing:
            cmd = _build_command(compiler, name, paths, stack.enter_context(replacing(paths[name])))
            build = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            stack.callback(_stop, build)  # on a failure, the other builds are not waited for
            builds.append((cmd, build))
        for cmd, build in builds:
            _, stderr = build.communicate()
            if build.returncode != 0:  # the first errors are the cause; the rest often follow from them
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr.strip()[:2000]}")
    return paths


class PReLUKernel:
    """The compiled libraries: ``prelu`` is the autograd op (x, weight, channel, save_output) -> y,
    the kernels' entry points handed to it by dtype."""

    def __init__(self, paths: dict[str, Path]) -> None:
        kernels = {name: ctypes.CDLL(str(paths[name])) for name in _VARIANTS}
        for name, lib in kernels.items():
            if lib.rectifiers_prelu_abi() != _ABI:
                raise RuntimeError(f"{paths[name]} has another ABI version")
        autograd = ctypes.CDLL(str(paths["autograd"]))  # loading it registers the op
        bind = autograd.rectifiers_prelu_bind
        bind.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        for dtype, code in DTYPES.items():
            lib = kernels["wide" if dtype in _WIDE_DTYPES else "narrow"]
            entries = (lib.rectifiers_prelu_forward, lib.rectifiers_prelu_backward)
            bind(code, *(ctypes.cast(entry, ctypes.c_void_p) for entry in entries))
        self._libraries = (*kernels.values(), autograd)  # the op calls into them
        self.prelu = getattr(torch.ops, _namespace(paths["autograd"])).prelu.default


def needs_build() -> bool:
    """Whether the next `load()` compiles the kernel (its first use with this compiler and CPU)."""
    if load.cache_info().currsize or _disabled():
        return False
    compiler = _compiler()
    if compiler is None or not (SOURCE.is_file() and AUTOGRAD_SOURCE.is_file()):  # `load` warns, falls back
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
