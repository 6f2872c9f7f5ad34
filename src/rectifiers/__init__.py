"""rectifiers: PReLU, rectifier-aware ("He"/"MSRA") initialization and the PReLU-nets of
"Delving Deep into Rectifiers" (He, Zhang, Ren, Sun, 2015) on PyTorch.

Public names are imported lazily (PEP 562) so that `import rectifiers` and the CLI start fast and
a missing optional module never breaks the others.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    "PReLU": "activations",
    "prelu": "activations",
    "initialize": "init",
    "calculate_gain": "init",
    "InitReport": "init",
    "param_groups": "optim",
    "signal_variance": "diagnostics",
    "SpatialPyramidPool2d": "layers",
    "Net": "models",
    "create_model": "models",
    "list_models": "models",
    "register_model": "models",
    "complexity": "complexity",
    "fit": "engine",
    "load_model": "checkpoint.inference",
    "load_checkpoint": "checkpoint.store",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rectifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rectifiers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
