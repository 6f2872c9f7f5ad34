"""Typed run configuration: dataclasses, TOML presets, `key=value` overrides.

A run is described by one `RunConfig` with five sections (`data`, `model`, `init`, `optim`,
`train`). Presets live in `rectifiers/configs/*.toml`; any field can be overridden with a dotted
key (`train.epochs=3`). Unknown keys and bad values raise `ValueError` listing what is valid, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
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


@dataclass
class DataConfig:
    spec: str = "mnist5k"  # mnist5k | cifar10[:PATH] | idx:PATH | folder:PATH | tinyimagenet:PATH | fake[:..]
    # The four sizes: 0 = from the training images (`rectifiers.sizes_from_data`, the `images` preset).
    crop: int = 28  # training crop side (paper: 224)
    scale_min: int = 28  # shorter side is resized to s ~ U[scale_min, scale_max] (paper: 256..512)
    scale_max: int = 32
    eval_resize: int = 28  # shorter side at validation, then a center crop (paper Table 2: 256)
    flip: float = 0.5  # probability of a horizontal flip (paper: one half)
    pca_std: float = 0.0  # AlexNet PCA colour altering strength; 0 disables (the paper gives no value)
    mean: str = "channel"  # mean subtraction: "pixel" (the paper) or "channel"
    divide_std: bool = True  # also divide by the std (the paper does not)
    raw_pixels: bool = False  # keep pixels in 0..255 before the mean subtraction (the paper); else 0..1
    workers: int = 0  # decoding processes for image folders that are not cached in memory
    # share of every class of train held out (seeded) as the validation split that picks the lr
    # switches and best.pt; the spec's own val split is then the test set, evaluated once at the end
    val_fraction: float = 0.0


@dataclass
class ModelConfig:
    name: str = "net14"  # a name from `rectifiers models`
    act: str = "prelu"  # a name of `layers.ACTIVATIONS` (prelu: channel-wise, prelu_shared: one slope)
    stem: str = "small"  # "imagenet" (7x7/2 + pool, the paper) or "small" (3x3/1, for 28-64 px)
    width: float = 0.25  # conv channel multiplier
    fc_width: int = 256  # units of fc1 and fc2 (paper: 4096)
    dropout: float = 0.5  # after fc1 and fc2 (paper: 50%)
    depths: list[int] = field(default_factory=list)  # per-stage conv counts; empty = the family's own
    spp_levels: list[int] = field(default_factory=list)  # SPP bins per side; empty = the family's own

    def create_args(self, num_classes: int, in_chans: int) -> dict[str, Any]:
        """The `create_model` keyword arguments this section stands for, for a data set of
        `num_classes` classes and `in_chans` channels. Checkpoints store them as `model_args`, which
        rebuild the model without reading the config."""
        args: dict[str, Any] = {
            "name": self.name,
            "num_classes": num_classes,
            "in_chans": in_chans,
            "act": self.act,
            "stem": self.stem,
            "width": self.width,
            "fc_width": self.fc_width,
            "dropout": self.dropout,
        }
        if self.depths:
            args["depths"] = tuple(self.depths)
        if self.spp_levels:
            args["spp_levels"] = tuple(self.spp_levels)
        return args


@dataclass
class InitConfig:
    scheme: str = "he"  # a name of `init.SCHEMES`
    mode: str = "fan_out"  # fan_in (Eq. 10) | fan_out (Eq. 14, what the paper trained with) | fan_avg
    # he's rectifier slope (Eq. 15): "auto" = the activation next to each layer (none before conv1 in
    # fan_in mode: a = 1 there); a number for every layer, 0 = Eq. 10 on conv1 too, as the paper did
    a: float | str = "auto"
    std: float = 0.01  # the fixed std of scheme "gaussian"
    fc_std: list[float] = field(default_factory=list)  # std of the Linear layers; paper: [0.01, 0.01, 0.001]

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
    lr: float = 0.01  # initial learning rate (paper: 1e-2)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to PReLU slopes (paper Sec. 2.1)
    decay_bias: bool = True  # apply weight decay to biases too (Caffe's default)
    schedule: str = "plateau"  # plateau: lr /= 10 when val error stops improving | milestones | constant
    milestones: list[int] = field(default_factory=list)  # epochs at which lr *= factor ("milestones")
    factor: float = 0.1  # lr multiplier at each switch (paper: 1e-2 -> 1e-3 -> 1e-4)
    patience: int = 2  # epochs without improvement before a plateau switch
    min_lr: float = 1e-4  # the plateau schedule never goes below this (paper's last rate)


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 128  # global batch, split over torchrun's processes (paper: 128); 0 = from the data
    seed: int = 0
    deterministic: bool = False  # deterministic kernels and fp32 maths: bitwise-reproducible resumes
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 with AMX or where measured faster) | off | bf16 | fp16 (CUDA only)
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU and tensor cores
    compile: bool = False  # torch.compile the model
    out: str = "runs/default"  # the run directory
    resume: str = ""  # "" (fresh run; refuses a directory holding checkpoints) | auto | PATH
    keep_last: int = 3  # epoch checkpoints kept besides last.pt and best.pt
    save_every: int = 0  # also checkpoint every N steps inside an epoch (0 = at epoch ends only)
    max_steps: int = 0  # stop after this many optimizer steps (0 = no limit), for smoke runs
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
        config = cls()
        for key, value in flatten(values).items():
            set_value(config, key, value)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        d, m, i, o, t = self.data, self.model, self.init, self.optim, self.train
        _choice("model.act", m.act, ACTIVATIONS)
        _choice("model.stem", m.stem, STEMS)
        _choice("init.scheme", i.scheme, SCHEMES)
        _choice("init.mode", i.mode, MODES)
        if isinstance(i.a, str) and i.a != "auto":
            raise ValueError(f"init.a must be 'auto' or a number, got {i.a!r}")
        _choice("optim.schedule", o.schedule, SCHEDULES)
        _choice("train.amp", t.amp, AMP_MODES)
        _device("train.device", t.device)
        _choice("data.mean", d.mean, MEAN_MODES)
        sizes = [d.crop, d.scale_min, d.scale_max, d.eval_resize]
        for key, value in zip(("crop", "scale_min", "scale_max", "eval_resize"), sizes, strict=True):
            _non_negative(f"data.{key}", value)  # 0: from the training images (sizes_from_data)
        if 0 not in sizes:
            if d.scale_max < d.scale_min or d.scale_min < d.crop:
                raise ValueError(
                    f"data.scale_min..scale_max must satisfy crop <= scale_min <= scale_max, got "
                    f"crop={d.crop}, scale_min={d.scale_min}, scale_max={d.scale_max}"
                )
            if d.eval_resize < d.crop:
                raise ValueError(f"data.eval_resize ({d.eval_resize}) must be >= data.crop ({d.crop})")
        _fraction("data.flip", d.flip)
        _non_negative("data.pca_std", d.pca_std)
        _non_negative("data.workers", d.workers)
        if not 0.0 <= d.val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
        _positive("model.width", m.width)
        _positive("model.fc_width", m.fc_width)
        if not 0.0 <= m.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {m.dropout}")
        _positive("init.std", i.std)
        for value in i.fc_std:
            _positive("init.fc_std", value)
        _positive("optim.lr", o.lr)
        _non_negative("optim.momentum", o.momentum)
        _non_negative("optim.weight_decay", o.weight_decay)
        if not 0.0 < o.factor < 1.0:
            raise ValueError(f"optim.factor must be in (0, 1), got {o.factor}")
        _non_negative("optim.patience", o.patience)
        _non_negative("optim.min_lr", o.min_lr)
        if o.schedule == "milestones" and not o.milestones:
            raise ValueError("optim.schedule = 'milestones' needs optim.milestones, e.g. [30, 60]")
        _positive("train.epochs", t.epochs)
        _non_negative("train.batch_size", t.batch_size)  # 0: from the number of training images
        _non_negative("train.seed", t.seed)
        _positive("train.keep_last", t.keep_last)  # last.pt links to the newest kept epoch file
        _non_negative("train.save_every", t.save_every)
        _non_negative("train.max_steps", t.max_steps)


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
    section_name, _, field_name = key.partition(".")
    sections = {f.name for f in dataclasses.fields(RunConfig)}
    section = getattr(config, section_name) if section_name in sections else None
    fields = {f.name: f for f in dataclasses.fields(section)} if section is not None else {}
    if field_name not in fields:
        raise ValueError(f"unknown config key {key!r} ({source}); {_key_hint(key)}")
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
            return _first_fitting(key, value, typing.get_args(hint))
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


def _first_fitting(key: str, value: Any, kinds: tuple[type, ...]) -> Any:
    """`value` as the first of `kinds` it converts to (`float | str`: "0.5" is a number, "auto" text)."""
    for kind in kinds:
        try:
            return _scalar(key, value, kind)
        except (ValueError, TypeError):
            continue
    raise ValueError(f"expected one of {', '.join(k.__name__ for k in kinds)}")


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{key} must be one of {', '.join(options)}; got {value!r}")


def _device(key: str, value: str) -> None:
    if value == "auto":
        return
    try:
        torch.device(value)
    except RuntimeError:
        msg = f"{key} must be auto or a torch device (cpu, cuda, cuda:N, ...); got {value!r}"
        raise ValueError(msg) from None


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be > 0, got {value}")


def _non_negative(key: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{key} must be >= 0, got {value}")


def _fraction(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{key} must be in [0, 1], got {value}")
