"""The random number generator states a checkpoint carries, so that a resumed run draws what it would have.

torch's CPU generator, each CUDA device's, NumPy's and Python's `random`, in one dict per rank. Only
tensors, numbers and lists, since checkpoints load with `weights_only=True`: NumPy's state travels
as an int64 tensor.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def get_rng_state() -> dict[str, Any]:
    """This process's generator states, as a dict of tensors, numbers and lists.

    Keys: "torch" (CPU generator), "numpy" (the Mersenne Twister key as an int64 tensor) and "numpy_pos"
    (its position), "python" (`random.getstate()` as a list), and "cuda" (every device's state) where
    CUDA is available.
    """
    numpy_state = np.random.get_state()
    version, internal, gauss = random.getstate()  # kept as lists, which weights_only=True loads
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_pos": int(numpy_state[2]),
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from a `get_rng_state()` dict.

    The CUDA states are restored only where the dict has them and CUDA is available here, so a
    checkpoint saved on a GPU machine resumes on a CPU one (with the CPU streams exact).
    """
    torch.set_rng_state(state["torch"])
    # NumPy's cached Gaussian is not saved, so it starts empty (has_gauss 0).
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
