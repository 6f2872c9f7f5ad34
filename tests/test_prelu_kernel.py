"""The fused kernel's build: its C++ source file, the build cache and the fallback without a compiler."""

from __future__ import annotations

import fnmatch
import functools
import re
import warnings
from pathlib import Path

import pytest

from rectifiers import prelu_kernel

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

needs_compiler = pytest.mark.skipif(prelu_kernel._compiler() is None, reason="no C++ compiler")


@pytest.mark.parametrize("source", [prelu_kernel.SOURCE, prelu_kernel.AUTOGRAD_SOURCE], ids=lambda p: p.name)
def test_the_sources_are_cpp_files_the_package_data_ships(source: Path) -> None:
    assert source.suffix == ".cpp" and source.is_file()
    assert 'extern "C"' in source.read_text()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["rectifiers"]
    assert any(fnmatch.fnmatch(source.name, pattern) for pattern in shipped), shipped


@needs_compiler
def test_a_compile_error_names_the_cpp_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = prelu_kernel.SOURCE.read_text().splitlines()
    broken = tmp_path / "prelu_kernel.cpp"
    broken.write_text("\n".join([lines[0], "this is not C++;", *lines[1:]]) + "\n")  # line 2
    monkeypatch.setattr(prelu_kernel, "SOURCE", broken)
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path / "cache"))
    with pytest.warns(RuntimeWarning, match=re.escape(f"{broken}:2:")):
        assert prelu_kernel.load.__wrapped__() is None


@needs_compiler
def test_the_cache_key_follows_the_source_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    compiler = prelu_kernel._compiler()
    assert compiler is not None
    text = prelu_kernel.SOURCE.read_text()
    first, second = tmp_path / "a" / "prelu_kernel.cpp", tmp_path / "b" / "prelu_kernel.cpp"
    for copy in (first, second):
        copy.parent.mkdir()
        copy.write_text(text)
    monkeypatch.setattr(prelu_kernel, "SOURCE", first)
    original = prelu_kernel._library_paths(compiler)
    monkeypatch.setattr(prelu_kernel, "SOURCE", second)
    assert prelu_kernel._library_paths(compiler) == original  # where the package sits is no input
    second.write_text(text + "// one more line\n")
    assert prelu_kernel._library_paths(compiler) != original


def test_falls_back_when_the_kernel_cannot_be_built(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(prelu_kernel, "_compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert prelu_kernel.load.__wrapped__() is None
    monkeypatch.setattr(prelu_kernel, "_compiler", lambda: "/bin/false")  # a "compiler" that fails
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="building the fused PReLU kernel failed"):
        assert prelu_kernel.load.__wrapped__() is None
    monkeypatch.setenv("RECTIFIERS_NO_KERNEL", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prelu_kernel.load.__wrapped__() is None


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))
    assert prelu_kernel.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("RECTIFIERS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert prelu_kernel.cache_dir() == tmp_path / "xdg" / "rectifiers" / "kernels"


def test_a_missing_source_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(prelu_kernel, "SOURCE", tmp_path / "prelu_kernel.cpp")  # an install without it
    monkeypatch.setattr(prelu_kernel, "_compiler", lambda: "c++")
    monkeypatch.setattr(prelu_kernel.load, "cache_info", lambda: functools.cache(int).cache_info())
    assert prelu_kernel.needs_build() is False
    with pytest.warns(RuntimeWarning, match="prelu_kernel.cpp"):
        assert prelu_kernel.load.__wrapped__() is None
