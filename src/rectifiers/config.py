"""Typed run configuration: dataclasses, TOML presets, `key=value` overrides.

A run is described by one `RunConfig` with five sections (`data`, `model`, `init`, `optim`,
`train`). Presets live in `rectifiers/configs/*.toml`; any field can be overridden with a dotted
key (`train.epochs=3`). Unknown keys and bad values raise `ValueError` listing what is valid, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from rectifiers.init import InitReport

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import torch

from rectifiers.init import MODES, SCHEMES
from rectifiers.layers import ACTIVATIONS
from rectifiers.models import STEMS
from rectifiers.transforms import MEAN_MODES

PRESET_DIR = Path(__file__).with_name("configs")

# Choices only the config names; every other choice list is declared by the module that implements it.
SCHEDULES = ("plateau", "milestones", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")

# The ranges a numeric field can declare, as its error message states them; a list is checked by entry.
_BOUNDS: dict[str, Callable[[float], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in [0, 1)": lambda v: 0 <= v < 1,
    "in (0, 1)": lambda v: 0 < v < 1,
}


def _within(default: Any, bound: str) -> Any:
    """A field whose values `RunConfig.validate` holds to `bound`, a key of `_BOUNDS`."""
    return field(default=default, metadata={"bound": bound})


def _one_of(default: str, choices: tuple[str, ...]) -> Any:
    """A field whose value `RunConfig.validate` holds to `choices`."""
    return field(default=default, metadata={"choices": choices})


@dataclass
class DataConfig:
    spec: str = "mnist5k"  # mnist5k | cifar10[:PATH] | idx:PATH | folder:PATH | tinyimagenet:PATH | fake[:..]
    # The four sizes: 0 = from the training images (`rectifiers.sizes_from_data`, the `images` preset).
    crop: int = _within(28, ">= 0")  # training crop side (paper: 224)
    scale_min: int = _within(28, ">= 0")  # train: shorter side s ~ U[scale_min, scale_max] (paper: 256..512)
    scale_max: int = _within(32, ">= 0")
    eval_resize: int = _within(28, ">= 0")  # val: shorter side, then a center crop (paper Table 2: 256)
    flip: float = _within(0.5, "in [0, 1]")  # probability of a horizontal flip (paper: one half)
    # AlexNet PCA colour altering strength; 0 disables (the paper gives no value)
    pca_std: float = _within(0.0, ">= 0")
    mean: str = _one_of("channel", MEAN_MODES)  # mean subtraction: "pixel" (the paper) or "channel"
    divide_std: bool = True  # also divide by the std (the paper does not)
    raw_pixels: bool = False  # keep pixels in 0..255 before the mean subtraction (the paper); else 0..1
    workers: int = _within(0, ">= 0")  # decoding processes for image folders that are not cached in memory
    # share of every class of train held out (seeded) as the validation split that picks the lr
    # switches and best.pt; the spec's own val split is then the test set, evaluated once at the end
    val_fraction: float = _within(0.0, "in [0, 1)")


@dataclass
class ModelConfig:
    name: str = "net14"  # a name from `rectifiers models`
    act: str = _one_of("prelu", ACTIVATIONS)  # prelu: channel-wise, prelu_shared: one slope
    stem: str = _one_of("small", STEMS)  # "imagenet" (7x7/2 + pool, the paper) or "small" (3x3/1, 28-64 px)
    width: float = _within(0.25, "> 0")  # conv channel multiplier
    fc_width: int = _within(256, "> 0")  # units of fc1 and fc2 (paper: 4096)
    dropout: float = _within(0.5, "in [0, 1)")  # after fc1 and fc2 (paper: 50%)
    depths: list[int] = field(default_factory=list)  # per-stage conv counts; empty = the family's own
    spp_levels: list[int] = field(default_factory=list)  # SPP bins per side; empty = the family's own

    def create_args(self, num_classes: int, in_chans: int) -> dict[str, Any]:
        """The `create_model` keyword arguments this section stands for, for a data set of
        `num_classes` classes and `in_chans` channels. Checkpoints store them as `model_args`, which
        rebuild the model without reading the config."""
        fields = dataclasses.asdict(self)
        args = {"name": fields.pop("name"), "num_classes": num_classes, "in_chans": in_chans}
        for key, value in fields.items():
            if not isinstance(value, list):
                args[key] = value
            elif value:  # empty: the family's own (create_model's default)
                args[key] = tuple(value)
        return args


@dataclass
class InitConfig:
    scheme: str = _one_of("he", SCHEMES)
    mode: str = _one_of("fan_out", MODES)  # fan_in: Eq. 10; fan_out: Eq. 14, what the paper trained with
    # he's rectifier slope (Eq. 15): "auto" = the activation next to each layer (none before conv1 in
    # fan_in mode: a = 1 there); a number for every layer, 0 = Eq. 10 on conv1 too, as the paper did
    a: float | str = "auto"
    std: float = _within(0.01, "> 0")  # the fixed std of scheme "gaussian"
    # std of the Linear layers; paper: [0.01, 0.01, 0.001]
    fc_std: list[float] = field(default_factory=list, metadata={"bound": "> 0"})

    def apply(self, model: nn.Module) -> InitReport:
        """Initialize `model` as this section says, through `rectifiers.init.initialize`, whose
        defaults are this section's (so `Net(init=True)` and the trainer's default agree)."""
        from rectifiers.init import initialize

        return initialize(
            model,
            scheme=self.scheme,
            mode=self.mode,
            a=self.a,
            std=self.std if self.scheme == "gaussian" else None,
            fc_std=tuple(self.fc_std) if self.fc_std else None,
        )


@dataclass
class OptimConfig:
    lr: float = _within(0.01, "> 0")  # initial learning rate (paper: 1e-2)
    momentum: float = _within(0.9, ">= 0")
    weight_decay: float = _within(5e-4, ">= 0")  # not applied to PReLU slopes (paper Sec. 2.1)
    decay_bias: bool = True  # apply weight decay to biases too (Caffe's default)
    schedule: str = _one_of("plateau", SCHEDULES)  # plateau: lr /= 10 when val error stops improving
    milestones: list[int] = field(default_factory=list)  # epochs at which lr *= factor ("milestones")
    factor: float = _within(0.1, "in (0, 1)")  # lr multiplier at each switch (paper: 1e-2 -> 1e-3 -> 1e-4)
    patience: int = _within(2, ">= 0")  # epochs without improvement before a plateau switch
    min_lr: float = _within(1e-4, ">= 0")  # the plateau schedule never goes below this (paper's last rate)


@dataclass
class TrainConfig:
    epochs: int = _within(12, "> 0")
    # global batch, split over torchrun's processes (paper: 128); 0 = from the data
    batch_size: int = _within(128, ">= 0")
    seed: int = _within(0, ">= 0")
    deterministic: bool = False  # deterministic kernels and fp32 maths: bitwise-reproducible resumes
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = _one_of("auto", AMP_MODES)  # auto: bf16 with AMX or where measured faster; fp16: CUDA only
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU and tensor cores
    compile: bool = False  # torch.compile the model
    out: str = "runs/default"  # the run directory
    resume: str = ""  # "" (fresh run; refuses a directory holding checkpoints) | auto | PATH
    # epoch checkpoints kept besides last.pt and best.pt (at least one: last.pt links to the newest)
    keep_last: int = _within(3, "> 0")
    save_every: int = _within(0, ">= 0")  # also checkpoint every N steps in an epoch (0 = at epoch ends only)
    max_steps: int = _within(0, ">= 0")  # stop after this many optimizer steps (0 = no limit), for smoke runs
    quiet: bool = False  # no progress bar
    tensorboard: bool = False  # also write TensorBoard events (needs the `tensorboard` package)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from nested dicts (a TOML file, a checkpoint's `config`), rejecting unknown keys."""
        return load_config(overrides=flatten(values))

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        for section in dataclasses.fields(self):
            values = getattr(self, section.name)
            for f in dataclasses.fields(values):
                key, value = f"{section.name}.{f.name}", getattr(values, f.name)
                choices, bound = f.metadata.get("choices"), f.metadata.get("bound")
                if choices is not None and value not in choices:
                    raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
                for item in value if isinstance(value, list) else [value]:
                    if bound is not None and not _BOUNDS[bound](item):
                        raise ValueError(f"{key} must be {bound}, got {item}")
        if isinstance(self.init.a, str) and self.init.a != "auto":
            raise ValueError(f"init.a must be 'auto' or a number, got {self.init.a!r}")
        if self.train.device != "auto":
            try:
                torch.device(self.train.device)
            except RuntimeError:
                raise ValueError(
                    "train.device must be auto or a torch device (cpu, cuda, cuda:N, ...); "
                    f"got {self.train.device!r}"
                ) from None
        d = self.data
        if 0 not in (d.crop, d.scale_min, d.scale_max, d.eval_resize):  # 0: from the training images
            if d.scale_max < d.scale_min or d.scale_min < d.crop:
                raise ValueError(
                    f"data.scale_min..scale_max must satisfy crop <= scale_min <= scale_max, got "
                    f"crop={d.crop}, scale_min={d.scale_min}, scale_max={d.scale_max}"
                )
            if d.eval_resize < d.crop:
                raise ValueError(f"data.eval_resize ({d.eval_resize}) must be >= data.crop ({d.crop})")
        if self.optim.schedule == "milestones" and not self.optim.milestones:
            raise ValueError("optim.schedule = 'milestones' needs optim.milestones, e.g. [30, 60]")


# ---------------------------------------------------------------------------- presets and overrides


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_config(
    preset_or_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """A preset name (`mnist`, `cifar10`, ...) or a TOML file, then `overrides` (dotted keys)."""
    config = RunConfig()
    if preset_or_path is not None:
        path = _resolve_preset(preset_or_path)
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML: {err}") from err
        for key, value in flatten(values).items():
            set_value(config, key, value, source=str(path))
    for key, value in (overrides or {}).items():
        set_value(config, key, value)
    config.validate()
    return config


def parse_override(text: str) -> tuple[str, str]:
    """`key=value` -> (key, value); the value is converted later, against the field's type."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set expects key=value (e.g. train.epochs=3), got {text!r}")
    return key.strip(), value.strip()


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def valid_keys() -> list[str]:
    config = RunConfig()
    return [
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(config)
        for f in dataclasses.fields(getattr(config, section.name))
    ]


def set_value(config: RunConfig, key: str, value: Any, source: str = "override") -> None:
    """Set a dotted key, converting `value` (str from the command line, or TOML types) to the field's type."""
    if key not in valid_keys():
        raise ValueError(f"unknown config key {key!r} ({source}); {_key_hint(key)}")
    section_name, _, field_name = key.partition(".")
    section = getattr(config, section_name)
    hint = typing.get_type_hints(type(section))[field_name]
    setattr(section, field_name, _convert(key, value, hint))


def _key_hint(key: str) -> str:
    """The closest valid key ("did you mean optim.weight_decay?"), else the keys section by section."""
    keys = valid_keys()
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not close:  # a bare field name ("lr") or a typo in it under the wrong section
        fields = {k.partition(".")[2]: k for k in keys}
        named = difflib.get_close_matches(key.rpartition(".")[2], list(fields), n=1, cutoff=0.75)
        close = [fields[n] for n in named]
    if close:
        return f"did you mean {close[0]}?"
    by_section: dict[str, list[str]] = {}
    for k in keys:
        section, _, name = k.partition(".")
        by_section.setdefault(section, []).append(name)
    return "valid keys:\n" + "\n".join(f"  {s}.{{{', '.join(n)}}}" for s, n in by_section.items())


def _resolve_preset(preset_or_path: str | Path) -> Path:
    # A file only when the argument says so (a .toml name, a folder in it) or names an existing file:
    # a folder called `cifar10` in the working directory must not hide the preset `cifar10`.
    text = str(preset_or_path)
    path = Path(preset_or_path)
    if path.suffix == ".toml" or "/" in text or os.sep in text or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return path
    candidate = PRESET_DIR / f"{text}.toml"
    if not candidate.is_file():
        raise ValueError(f"unknown preset {text!r}; presets: {', '.join(list_presets())}")
    return candidate


def _convert(key: str, value: Any, hint: Any) -> Any:
    try:
        if typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint)
            if isinstance(value, str):
                value = [v for v in value.strip("[] ").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError("expected a list")
            return [_scalar(key, v, item) for v in value]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            # the first type that takes the value (`float | str`: "0.5" is a number, "auto" text)
            kinds = typing.get_args(hint)
            for kind in kinds:
                with contextlib.suppress(ValueError, TypeError):
                    return _scalar(key, value, kind)
            raise ValueError(f"expected one of {', '.join(k.__name__ for k in kinds)}")
        return _scalar(key, value, hint)
    except (ValueError, TypeError) as err:  # TypeError: a TOML list or table where a number belongs
        expected = getattr(hint, "__name__", str(hint))
        raise ValueError(f"bad value {value!r} for {key} (expected {expected}): {err}") from None


def _scalar(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected an integer")
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    raise TypeError(f"unsupported config type for {key}: {kind}")
