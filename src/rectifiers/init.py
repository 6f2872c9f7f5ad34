"""Rectifier-aware ("He" / "MSRA") initialization, paper Sec. 2.2, Eq. 5-15.

With a rectifier of slope a between layers, a layer keeps the forward signal's scale when
½(1 + a²) · n · Var[w] = 1 with n = fan_in (Eq. 10), and the gradient's when the same holds with
n̂ = fan_out (Eq. 14). Either way (Eq. 15) the weights come from an untruncated zero-mean Gaussian,

    std = sqrt(2 / ((1 + a²) · n))

a = 0 is ReLU (gain √2), 0.25 the paper's PReLU init, 1 the linear case (Xavier's n · Var[w] = 1,
Caffe's "xavier" filler). The paper trains with Eq. 14, `initialize`'s default ``mode="fan_out"``;
the torch.nn.init-style functions default to ``"fan_in"`` as torch does.

Fans of a weight (out, in/groups, *kernel): fan_in = (in/groups) · k², fan_out = (out/groups) · k².
A tensor does not record its groups, so torch.nn.init's fan_out overstates n̂ by the group count:
pass ``groups=`` (`initialize` does, from each module). A transposed conv's weight is
(in, out/groups, *kernel) and each response sums (in/groups) · k² / prod(stride) terms on average;
only `calculate_fans(module)` can tell it from a conv's weight.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from rectifiers.activations import activation_slope
from rectifiers.text_table import aligned_lines, cell, markdown_table

__all__ = [
    "InitReport",
    "InitRow",
    "WeightLayer",
    "calculate_fans",
    "calculate_gain",
    "gaussian_",
    "he_normal_",
    "he_std",
    "he_uniform_",
    "initialize",
    "rectifier_gain",
    "variance_chain",
    "weight_layers",
    "xavier_normal_",
    "xavier_std",
    "xavier_uniform_",
]

# The fans Eq. 15 can divide by and the schemes `initialize` knows; the config and the CLI offer these.
InitMode = Literal["fan_in", "fan_out", "fan_avg"]
InitScheme = Literal["he", "xavier", "gaussian", "torch"]
MODES: tuple[InitMode, ...] = get_args(InitMode)
SCHEMES: tuple[InitScheme, ...] = get_args(InitScheme)
# The layers `initialize` and the diagnostics treat as the paper's weight layers (Eq. 5).
WEIGHT_LAYER_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
# torch's activation modules other than the rectifiers: `initialize` warns before it takes one as linear
_NOT_ACTIVATIONS = (nn.MultiheadAttention,)

ShapeLike = Tensor | torch.Size | Sequence[int]


def _shape(tensor_or_shape: ShapeLike) -> tuple[int, ...]:
    if isinstance(tensor_or_shape, Tensor):
        return tuple(tensor_or_shape.shape)
    shape = tuple(int(s) for s in tensor_or_shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"a weight shape has non-negative sizes, got {shape}")
    return shape


def calculate_fans(layer_or_shape: ShapeLike | nn.Module, groups: int = 1) -> tuple[float, float]:
    """``(fan_in, fan_out)`` = ``(n, n̂)`` of Eq. 5 and Eq. 11.

    Ints for a weight (tensor or shape); for a weight layer module its own groups and layout, a
    float where a transposed conv's stride does not divide k².

    >>> calculate_fans((128, 64, 3, 3))
    (576, 1152)
    >>> calculate_fans(nn.ConvTranspose2d(64, 32, 4, stride=2))
    (256.0, 512)
    """
    if isinstance(layer_or_shape, nn.Module):
        return _layer_fans(layer_or_shape)
    shape = _shape(layer_or_shape)
    if len(shape) < 2:
        raise ValueError(f"fans need a weight with at least 2 dims (out, in, *kernel), got shape {shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or shape[0] % groups:
        raise ValueError(f"groups must be a positive int dividing out={shape[0]}, got {groups!r}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] // groups * receptive


def _layer_fans(module: nn.Module) -> tuple[float, float]:
    if not isinstance(module, WEIGHT_LAYER_TYPES):
        names = ", ".join(t.__name__ for t in WEIGHT_LAYER_TYPES)
        raise ValueError(f"fans of a module need one of {names}, got {type(module).__name__}")
    weight: Tensor = module.weight
    groups = int(getattr(module, "groups", 1))
    if not getattr(module, "transposed", False):
        return calculate_fans(weight, groups)
    # weight (in, out/groups, *kernel): the conv layout with in and out swapped
    per_input, per_output = calculate_fans(weight.shape, groups)
    return per_output / math.prod(module.stride), per_input


def _fan(fan_in: float, fan_out: float, mode: InitMode, shape: tuple[int, ...]) -> float:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    if n == 0:
        raise ValueError(f"cannot compute a {mode} std for a weight with no elements: {shape}")
    return n


def _check_slope(a: float) -> float:
    # a=True is a mistake, not a slope of 1; nan or inf would give silently useless weights
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a):
        raise ValueError(f"the rectifier slope a must be a finite number, got {a!r}")
    return float(a)


def rectifier_gain(a: float = 0.0) -> float:
    """``sqrt(2 / (1 + a²))`` (Eq. 15): √2 for ReLU, 1.372 for PReLU at 0.25, 1 for the linear case."""
    a = _check_slope(a)
    return math.sqrt(2.0 / (1.0 + a * a))


# torch.nn.init.calculate_gain's fixed gains, and the rectifiers whose gain is Eq. 15's at a slope
# (their default slope: torch's 0.01 for leaky_relu, the paper's initial 0.25 for prelu)
_FIXED_GAINS = {
    **dict.fromkeys(("linear", "sigmoid", "conv1d", "conv2d", "conv3d"), 1.0),
    **dict.fromkeys(("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"), 1.0),
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}
_DEFAULT_SLOPES = {"leaky_relu": 0.01, "prelu": 0.25}
GAINS = (*_FIXED_GAINS, *_DEFAULT_SLOPES)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``torch.nn.init.calculate_gain`` plus ``"prelu"``: Eq. 15's ``sqrt(2 / (1 + a²))`` with
    ``a = param`` (default 0.25, the paper's initial slope; ``"leaky_relu"``'s is torch's 0.01).

    >>> round(calculate_gain("prelu"), 4)
    1.372
    """
    if nonlinearity in _DEFAULT_SLOPES:
        return rectifier_gain(_DEFAULT_SLOPES[nonlinearity] if param is None else param)
    if nonlinearity not in _FIXED_GAINS:
        raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; choose one of {', '.join(GAINS)}")
    return _FIXED_GAINS[nonlinearity]


def he_std(
    tensor_or_shape: ShapeLike, a: float = 0.0, mode: InitMode = "fan_in", *, groups: int = 1
) -> float:
    """``sqrt(2 / ((1 + a²) · n))`` (Eq. 10, 14, 15), with n the fan chosen by ``mode``.

    >>> round(he_std((64, 64, 3, 3), mode="fan_out"), 4)  # VGG model B, 64 filters (Sec. 2.2)
    0.0589
    """
    fan_in, fan_out = calculate_fans(tensor_or_shape, groups)
    return rectifier_gain(a) / math.sqrt(_fan(fan_in, fan_out, mode, _shape(tensor_or_shape)))


def xavier_std(tensor_or_shape: ShapeLike, mode: InitMode = "fan_avg", *, groups: int = 1) -> float:
    """``sqrt(1 / n)``: Xavier's n · Var[w] = 1, the a = 1 case of Eq. 15. ``mode="fan_in"`` is
    Caffe's "xavier" filler (the paper's baseline); ``"fan_avg"`` is Glorot's 2 / (fan_in + fan_out)."""
    return he_std(tensor_or_shape, a=1.0, mode=mode, groups=groups)


def gaussian_(tensor: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """Fill ``tensor`` in place from N(0, std²) and return it; untruncated, since truncation would
    shrink the variance Eq. 15 sets."""
    if not std >= 0:
        raise ValueError(f"std must be a non-negative number, got {std!r}")
    with torch.no_grad():
        if not tensor.is_meta:  # a meta tensor has no values to fill
            tensor.normal_(0.0, std, generator=generator)
    return tensor


def _fill_(
    tensor: Tensor, std: Callable[[], float], generator: torch.Generator | None, uniform: bool
) -> Tensor:
    """``tensor`` from N(0, std()²), or with ``uniform`` from U(-b, b), b = √3 · std() (the same
    variance, b²/3); a tensor with no element has no fan and is left alone, warning as torch.nn.init does."""
    if not tensor.numel():
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    if not uniform:
        return gaussian_(tensor, std(), generator)
    bound = math.sqrt(3.0) * std()
    with torch.no_grad():
        if not tensor.is_meta:
            tensor.uniform_(-bound, bound, generator=generator)
    return tensor


def _he_slope(a: float, nonlinearity: str) -> float:
    """The slope for Eq. 15 from torch's ``kaiming_*`` arguments ("relu" means a = 0, as in torch)."""
    a = _check_slope(a)
    if nonlinearity not in ("leaky_relu", "relu"):
        raise ValueError(
            f"nonlinearity must be 'leaky_relu' or 'relu' (the rectifiers of Eq. 15), got {nonlinearity!r};"
            " for another activation scale xavier_normal_ by calculate_gain(...)"
        )
    return 0.0 if nonlinearity == "relu" else a


def he_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: InitMode = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    groups: int = 1,
) -> Tensor:
    """Fill ``tensor`` from N(0, `he_std`²) (Eq. 10/14/15), with ``torch.nn.init.kaiming_normal_``'s
    arguments in its order; ``mode="fan_avg"`` averages the fans, ``groups`` divides fan_out.

    >>> w = he_normal_(torch.empty(256, 128, 3, 3), mode="fan_out")
    """
    slope = _he_slope(a, nonlinearity)
    return _fill_(tensor, lambda: he_std(tensor, slope, mode, groups=groups), generator, uniform=False)


def he_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: InitMode = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    groups: int = 1,
) -> Tensor:
    """`he_normal_`'s variance from U(-b, b), b = √3 · `he_std` (``kaiming_uniform_``'s arguments)."""
    slope = _he_slope(a, nonlinearity)
    return _fill_(tensor, lambda: he_std(tensor, slope, mode, groups=groups), generator, uniform=True)


def _xavier_std(tensor: Tensor, gain: float, mode: InitMode, groups: int) -> float:
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain >= 0 or math.isinf(gain):
        raise ValueError(f"gain must be a finite non-negative number, got {gain!r}")
    return gain * xavier_std(tensor, mode, groups=groups)


def xavier_normal_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mode: InitMode = "fan_avg",
    groups: int = 1,
) -> Tensor:
    """N(0, gain² / n) (`xavier_std`) with ``xavier_normal_``'s arguments; ``mode="fan_in"`` is Caffe's."""
    return _fill_(tensor, lambda: _xavier_std(tensor, gain, mode, groups), generator, uniform=False)


def xavier_uniform_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mode: InitMode = "fan_avg",
    groups: int = 1,
) -> Tensor:
    """U(-b, b), b = √3 · gain · `xavier_std`, with ``torch.nn.init.xavier_uniform_``'s arguments."""
    return _fill_(tensor, lambda: _xavier_std(tensor, gain, mode, groups), generator, uniform=True)


@dataclass(frozen=True)
class WeightLayer:
    """A weight layer and the rectifiers around it.

    ``slope_in``: the rectifier on the layer's input (x_l = f(y_{l-1}), Eq. 8); ``slope_out``: the
    one on its response (f′ of Eq. 12); None where there is none. ``other_in`` / ``other_out`` name a
    non-rectifier torch activation (SiLU, GELU, ...) found there instead.
    """

    name: str
    module: nn.Module
    slope_in: float | None
    slope_out: float | None
    other_in: str | None = None
    other_out: str | None = None


def _other_activation(module: nn.Module) -> str | None:
    is_activation = type(module).__module__ == nn.modules.activation.__name__
    if is_activation and not isinstance(module, _NOT_ACTIVATIONS) and activation_slope(module) is None:
        return type(module).__name__
    return None


def weight_layers(model: nn.Module) -> list[WeightLayer]:
    """Every `WEIGHT_LAYER_TYPES` module of ``model`` in forward order, with its rectifiers.

    Forward order is registration order (``named_modules()``), true of sequential designs such as
    the paper's nets. The rectifier after a layer is the first activation module registered before
    the next weight layer (pooling, dropout, normalization are passed over). Functional or reused
    activations cannot be seen this way: pass an explicit ``a`` to `initialize` for such models.
    """
    layers: list[tuple[str, nn.Module]] = []
    before: list[tuple[float | None, str | None]] = []  # (slope, other activation) before each layer
    pending: tuple[float | None, str | None] = (None, None)  # the first activation since the last layer
    for name, module in model.named_modules():
        if isinstance(module, WEIGHT_LAYER_TYPES):
            layers.append((name or type(module).__name__, module))
            before.append(pending)
            pending = (None, None)
        elif pending == (None, None):
            pending = (activation_slope(module), _other_activation(module))
    if not layers:
        return []
    after = [*before[1:], pending]
    return [
        WeightLayer(name, module, s_in, s_out, o_in, o_out)
        for (name, module), (s_in, o_in), (s_out, o_out) in zip(layers, before, after, strict=True)
    ]


def _linear_if_none(slope: float | None) -> float:
    # No rectifier between two layers: the signal passes linearly, the a = 1 case of Eq. 15.
    return 1.0 if slope is None else slope


def variance_chain(layers: Iterable[tuple[float, float, float | None]], start: float = 1.0) -> list[float]:
    """The layer product of Eq. 9 / Eq. 13: ``start``, then ``start`` times the running product of
    ½(1 + a_l²) · n_l · Var[w_l] over the ``(n_l, Var[w_l], a_l)`` given; ``a_l = None`` is linear.

    Forward (Eq. 9): fan_in and the rectifier before each layer, in forward order. Backward (Eq. 13):
    fan_out and the rectifier after each layer, from the last layer back.

    >>> [round(v, 4) for v in variance_chain([(576, 2 / 576, 0.0), (1152, 1e-4, 0.25)])]
    [1.0, 1.0, 0.0612]
    """
    values = [start]
    for n, var_w, a in layers:
        slope = _linear_if_none(a)
        values.append(values[-1] * 0.5 * (1 + slope * slope) * n * var_w)
    return values


@dataclass
class InitRow:
    """One weight layer of an `InitReport`: ``n`` the fan the rule used, ``a`` the slope it put into
    Eq. 15 (None if none), ``std`` the target, ``measured_std`` the drawn weights' (None on meta)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    fan_in: float
    fan_out: float
    n: float
    a: float | None
    std: float
    measured_std: float | None
    rule: str
    slope_in: float | None
    slope_out: float | None


@dataclass
class InitReport:
    """The per-layer result of `initialize`: a list of `InitRow` plus the scheme and mode."""

    scheme: str
    mode: str
    rows: list[InitRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[InitRow]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> InitRow:
        return self.rows[key] if isinstance(key, int) else self.rows[self.index(key)]

    def index(self, name: str) -> int:
        """Position of a layer given as its name, its 1-based number in forward order (``"2"``: the
        second layer, unless a layer is named "2" as in an ``nn.Sequential``: names win), or a unique
        dotted suffix of its name (``"conv2"`` finds ``"features.conv2"``)."""
        exact = [i for i, r in enumerate(self.rows) if r.name == name]
        if exact:
            return exact[0]
        if name.isdigit():
            if not 1 <= int(name) <= len(self.rows):
                raise ValueError(f"layer number {name} is out of range: there are {len(self.rows)} layers")
            return int(name) - 1
        found = [i for i, r in enumerate(self.rows) if r.name.endswith("." + name)]
        if len(found) == 1:
            return found[0]
        names = ", ".join(r.name for r in self.rows)
        if not found:
            raise ValueError(f"no weight layer named {name!r}; the layers are: {names}")
        matches = ", ".join(self.rows[i].name for i in found)
        raise ValueError(f"layer name {name!r} is ambiguous, it matches: {matches}")

    def attenuation(
        self, start: str, end: str, std: float | None = None, direction: str = "backward"
    ) -> float:
        """Factor by which the signal std changes across layers ``start`` .. ``end`` (inclusive),
        relative to He initialization of the same layers: Π_l σ_l / σ_He,l.

        Backward (Eq. 13) uses n̂_l and the rectifier after each layer, forward (Eq. 9) n_l and the
        one before. ``std=None`` uses each row's target std; a number applies to every layer.
        Sec. 2.2: VGG model B at std 0.01 gives ``attenuation("conv2", "conv10", std=0.01)`` =
        1/(5.9·4.2²·2.9²·2.1⁴) ≈ 1/(1.7·10⁴).
        """
        if direction not in ("backward", "forward"):
            raise ValueError(f"direction must be 'backward' or 'forward', got {direction!r}")
        if std is not None and not std >= 0:
            raise ValueError(f"std must be a non-negative number, got {std!r}")
        i, j = self.index(start), self.index(end)
        if i > j:
            raise ValueError(f"layer {start!r} comes after {end!r} in forward order")
        rows = self.rows[i : j + 1]
        sigmas = [row.std if std is None else std for row in rows]
        fan, slope = ("fan_out", "slope_out") if direction == "backward" else ("fan_in", "slope_in")
        layers = [(getattr(r, fan), s * s, getattr(r, slope)) for r, s in zip(rows, sigmas, strict=True)]
        # He's std gives each layer a factor of 1, so the chain is already relative to He's init.
        return math.sqrt(variance_chain(layers)[-1])

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["layer", "kind", "weight shape", "n", "a", "std", "measured", "rule"]
        body = [
            [
                r.name,
                r.kind,
                "x".join(map(str, r.shape)),
                f"{r.n:g}",
                cell(r.a, ".3g"),
                cell(r.std, ".4g"),
                cell(r.measured_std, ".4g"),
                r.rule,
            ]
            for r in self.rows
        ]
        return header, body

    def __str__(self) -> str:
        header, body = self._table()
        title = f"init: scheme={self.scheme} mode={self.mode} ({len(self.rows)} weight layers)"
        return "\n".join([title, *aligned_lines(header, body, left=(0, 1, 2, 7))])  # numbers flush right

    def to_markdown(self) -> str:
        return markdown_table(*self._table())

    def to_dict(self) -> dict[str, Any]:
        layers = [{**asdict(row), "shape": list(row.shape)} for row in self.rows]
        return {"scheme": self.scheme, "mode": self.mode, "layers": layers}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _fc_stds(fc_std: float | Sequence[float] | None, layers: list[WeightLayer]) -> dict[str, float]:
    if fc_std is None:
        return {}
    linear = [layer.name for layer in layers if isinstance(layer.module, nn.Linear)]
    if isinstance(fc_std, (int, float)):
        stds = [float(fc_std)] * len(linear)
    else:
        stds = [float(s) for s in fc_std]
        if len(stds) != len(linear):
            raise ValueError(
                f"fc_std has {len(stds)} entries but the model has {len(linear)} Linear layers "
                f"({', '.join(linear) or 'none'}); give one std per Linear layer, or a single number"
            )
    for s in stds:
        if not s >= 0:
            raise ValueError(f"fc_std entries must be non-negative numbers, got {s!r}")
    return dict(zip(linear, stds, strict=True))


def _warn_of_other_activations(layers: list[WeightLayer], mode: str) -> None:
    """One warning per activation type that `initialize` took as linear for ``layers``, naming them."""
    side = "precedes" if mode == "fan_in" else "follows"
    found: dict[str, list[str]] = {}
    for layer in layers:
        other = layer.other_in if mode == "fan_in" else layer.other_out
        if other is not None:
            found.setdefault(other, []).append(layer.name)
    for other, names in found.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        warnings.warn(
            f"initialize: {other} is not a rectifier; Eq. 15 took it as linear (a = 1) for the layers it "
            f"{side}: {shown}. Pass a= to initialize to choose the slope yourself",
            stacklevel=3,
        )


def initialize(
    model: nn.Module,
    scheme: InitScheme = "he",
    mode: InitMode = "fan_out",
    a: float | str = "auto",
    fc_std: float | Sequence[float] | None = None,
    std: float | None = None,
    generator: torch.Generator | None = None,
) -> InitReport:
    """Initialize every Conv1d/2d/3d, ConvTranspose1d/2d/3d and Linear of ``model`` in forward order,
    biases to 0. Fans as `calculate_fans` gives them for each module (groups, transposed layout).

    Schemes:
        ``"he"``: N(0, 2 / ((1 + a²) · n)) (Eq. 15), n by ``mode`` (``"fan_out"``: Eq. 14, the
            paper's; ``"fan_in"``: Eq. 10; ``"fan_avg"``: their mean).
        ``"xavier"``: N(0, 1/n) with n by ``mode`` (``mode="fan_in"`` is the paper's baseline).
        ``"gaussian"``: N(0, std²) for every layer (``std=`` required), e.g. the 0.01 of Sec. 2.2.
        ``"torch"``: each layer's ``reset_parameters()``, biases included; its target std
            1/sqrt(3 · fan_in) comes from ``kaiming_uniform_(a=√5)``, not He's init.

    ``a="auto"`` takes each layer's slope from the rectifier next to it (`weight_layers`): after
    the layer for ``"fan_out"`` / ``"fan_avg"`` (Eq. 12), before it for ``"fan_in"`` (Eq. 8); a = 1
    where there is none (the paper keeps Eq. 10's ½ on the first layer: pass ``a=0`` for that), and
    for a non-rectifier activation, with a warning. A number sets ``a`` for every layer.

    ``fc_std``: fixed stds for the Linear layers in forward order, one each or one for all
    (``(0.01, 0.01, 0.001)`` is the paper's, Sec. 2.2); it overrides every scheme there.

    These defaults are the package's one init (`InitConfig()` and `Net(init=True)` use them); the
    fc layers get Eq. 14 too because the paper's fixed fc stds stall a narrow head.

    Works on the meta device: stds come from shapes only, and ``measured_std`` is then None.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}; got {scheme!r}")
    if scheme == "gaussian":
        if std is None or not std >= 0:
            raise ValueError(f"scheme='gaussian' needs a non-negative std=, got {std!r}")
    elif std is not None:
        raise ValueError(f"std= is only used with scheme='gaussian' (got scheme={scheme!r})")
    if scheme == "torch" and generator is not None:
        raise ValueError("scheme='torch' calls reset_parameters(), which cannot take a generator")
    if isinstance(a, str) and a != "auto":
        raise ValueError(f"a must be 'auto' or a number, got {a!r}")
    if not isinstance(a, str) and not math.isfinite(a):
        raise ValueError(f"a must be a finite number, got {a!r}")

    layers = weight_layers(model)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no Conv1d/2d/3d, ConvTranspose1d/2d/3d or Linear layer to initialize"
        )
    fixed = _fc_stds(fc_std, layers)
    report = InitReport(scheme=scheme, mode=mode)
    for layer in layers:
        module = layer.module
        weight: Tensor = module.weight
        fan_in, fan_out = calculate_fans(module)
        n = _fan(fan_in, fan_out, mode, tuple(weight.shape))
        next_to = _linear_if_none(layer.slope_in if mode == "fan_in" else layer.slope_out)
        slope = next_to if a == "auto" else float(a)
        used_a: float | None = None
        if layer.name in fixed:
            target, rule = fixed[layer.name], "fc_std"
        elif scheme == "he":
            target, rule, used_a = rectifier_gain(slope) / math.sqrt(n), f"he {mode}", slope
        elif scheme == "xavier":
            target, rule, used_a = 1.0 / math.sqrt(n), f"xavier {mode}", 1.0
        elif scheme == "gaussian":
            assert std is not None
            target, rule = float(std), "gaussian"
        else:
            module.reset_parameters()
            target, rule, n = 1.0 / math.sqrt(3.0 * fan_in), "torch", fan_in
        if rule != "torch":
            gaussian_(weight, target, generator)
        bias = getattr(module, "bias", None)
        if bias is not None and (scheme != "torch" or layer.name in fixed):
            with torch.no_grad():
                bias.zero_()
        measured = None
        if not weight.is_meta and weight.numel() > 1:
            measured = float(weight.detach().float().std())
        report.rows.append(
            InitRow(
                name=layer.name,
                kind=type(module).__name__,
                shape=tuple(weight.shape),
                fan_in=fan_in,
                fan_out=fan_out,
                n=n,
                a=used_a,
                std=target,
                measured_std=measured,
                rule=rule,
                slope_in=layer.slope_in,
                slope_out=layer.slope_out,
            )
        )
    if scheme == "he" and a == "auto":
        _warn_of_other_activations([layer for layer in layers if layer.name not in fixed], mode)
    return report
