"""The paper's architectures as data tables, one `Net` that builds any of them, and a registry.

Models (`list_models()`), all with stride-1 "same"-size stages, max pooling, SPP and three fc layers:

    vgg19    VGG-19 [25], the comparison model of Table 3 (16 conv + 3 fc).
    vgg_b    VGG configuration B (10 conv: 64,64,128,128,256,256,512,512,512,512 + 3 fc), the model
             of the init-std example of Sec. 2.2 (std 0.059, 0.042, 0.029, 0.021 by Eq. 14).
    model_a  Table 3 (v1 text): 7×7/2 conv 96, 2×2/2 max pool, 3×3 stages at 56/28/14 of 256/512/512
             filters × 5 with 2×2/2 pools between them, SPP {7,3,2,1}, fc 4096-4096-classes. Depth 19.
    model_b  model A with 6 convs per stage (three more layers). Depth 22.
    model_c  model B wider: 384/768/896 filters. Depth 22.
    net14    Table 1 (model E of [10]): 7×7/2 conv 64 → 3×3/3 pool → 4× 2×2 conv 128 → 2×2/2 pool →
             6× 2×2 conv 256 → SPP {6,3,2,1} → fc 4096-4096-classes. Depth 14.
    net22    net14 with 14 convs in stage 3 (a 22-layer member of the same family).
    net30    the 30-layer small model of Figure 3 (27 conv + 3 fc): net14 with 22 convs in stage 3.

Choices the paper leaves open, made here (and parameters where it matters):

- Padding. 3×3 convs pad 1 (the 56/28/14 map sizes of Table 3 imply it). The 2×2 convs of the
  net family alternate padding 1 and 0 within a stage (the first pads 1), so a map grows by one
  pixel and shrinks back: net14 at 224 px keeps its stages at 36/37 and 18/19, [10]'s "dominantly
  36×36 and 18×18", with no asymmetric padding copy and no half-pixel drift. Model A's conv1 pads 3
  (224 → 112); net14's conv1 pads 0 (224 → 109, then the 3×3/3 pool gives 36).
- VGG's head. Table 3 lists VGG-19 with pool5 (2×2/2) and fc layers, no SPP. Here VGG keeps pool5 in
  `forward_features` and its head pools to one 7×7 level (`spp_levels=(7,)`): at 224 px pool5's map
  is 7×7, so this is exactly the classic flatten (fc1 input 25,088), and other sizes still work.
- The 30-layer model: v1 says only that "up to sixteen conv layers with 256 2×2 filters" were added
  to the model of Table 1; they go into stage 3 (the only stage of 256 2×2 filters) here. The stage
  depths are the `depths` argument, so other placements and depths (`net22`) are one call away.
- Activations follow every conv and fc1, fc2 (not fc3); dropout follows the activations of fc1, fc2.

`rectifiers models` and `rectifiers.complexity` count multiply-adds, parameters and slopes from
these definitions (Table 3's figures are matched in the README).

Small images (28-64 px on a CPU): `stem="small"` makes conv1 3×3 stride 1 and drops the first max
pool, so a 28-32 px input gives stage maps near net14's 36/18; the SPP levels then default to the
family's `small_spp_levels` (bins of 3-4 px like the paper's). The small-scale experiments use
``create_model("net14" | "net22" | "net30", stem="small", width=0.25, fc_width=256)``.

Initialization: `rectifiers.initialize` with its defaults (He's Eq. 14 on every conv and fc layer,
biases 0), the trainer's too; the paper's fixed fc stds are ``initialize(model, fc_std=...)``.
``init=False`` keeps PyTorch's init (what building on the meta device needs).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rectifiers.layers import ActLayer, SpatialPyramidPool2d, conv_act, make_activation

# --------------------------------------------------------------------------------------- the tables


class Stage(NamedTuple):
    channels: int  # filters of every conv in the stage
    kernel: int  # square kernel side; stride 1
    repeats: int  # convs in the stage


@dataclass(frozen=True)
class NetSpec:
    stages: tuple[Stage, ...]  # stride-1 conv stages, a max pool between consecutive ones
    stem: tuple[int, int, int, int] | None = None  # conv1 (channels, kernel, stride, padding); None: none
    stem_pool: tuple[int, int] | None = None  # max pool (kernel, stride) after conv1
    pool: tuple[int, int] = (2, 2)  # max pool (kernel, stride) between stages
    final_pool: bool = False  # also pool after the last stage (VGG's pool5)
    spp_levels: tuple[int, ...] = (7, 3, 2, 1)  # SPP bins per side, before fc1
    small_spp_levels: tuple[int, ...] = (4, 2, 1)  # the same for stem="small"
    fc: tuple[int, ...] = (4096, 4096)  # hidden fc layers; the classifier follows them


def _stages(*rows: tuple[int, int, int]) -> tuple[Stage, ...]:
    return tuple(Stage(*row) for row in rows)


_VGG = {"final_pool": True, "spp_levels": (7,), "small_spp_levels": (2,)}
_NET = {"stem": (64, 7, 2, 0), "stem_pool": (3, 3), "spp_levels": (6, 3, 2, 1)}
_TABLE3 = {"stem": (96, 7, 2, 3), "stem_pool": (2, 2)}

SPECS: dict[str, NetSpec] = {
    "vgg19": NetSpec(_stages((64, 3, 2), (128, 3, 2), (256, 3, 4), (512, 3, 4), (512, 3, 4)), **_VGG),
    "vgg_b": NetSpec(_stages((64, 3, 2), (128, 3, 2), (256, 3, 2), (512, 3, 2), (512, 3, 2)), **_VGG),
    "model_a": NetSpec(_stages((256, 3, 5), (512, 3, 5), (512, 3, 5)), **_TABLE3),
    "model_b": NetSpec(_stages((256, 3, 6), (512, 3, 6), (512, 3, 6)), **_TABLE3),
    "model_c": NetSpec(_stages((384, 3, 6), (768, 3, 6), (896, 3, 6)), **_TABLE3),
    "net14": NetSpec(_stages((128, 2, 4), (256, 2, 6)), **_NET),
    "net22": NetSpec(_stages((128, 2, 4), (256, 2, 14)), **_NET),
    "net30": NetSpec(_stages((128, 2, 4), (256, 2, 22)), **_NET),
}

STEMS = ("imagenet", "small")


def _padding(kernel: int, index: int) -> int:
    """Padding of the `index`-th stride-1 conv of a stage: "same" for odd kernels; for even kernels
    alternately k/2 and k/2 - 1, so the map grows by one and shrinks back (see the module docstring)."""
    if kernel % 2:
        return kernel // 2
    return kernel // 2 if index % 2 == 0 else kernel // 2 - 1


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def count_slopes(model: nn.Module) -> int:
    """Number of learned PReLU slopes a_i in `model` (ours and `torch.nn.PReLU`)."""
    from rectifiers.activations import PReLU

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, PReLU | nn.PReLU))


def model_device(model: nn.Module) -> torch.device:
    """The device of `model`'s first parameter (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# -------------------------------------------------------------------------------------------- Net


class Net(nn.Module):
    """A plain conv net built from a `NetSpec`: conv stages → SPP → fc, fc, classifier.

    Layers are registered in forward order (`features.conv1`, `features.act1`, `features.pool1`,
    `features.conv2_1`, ..., `head.spp`, `head.fc1`, ..., `head.fc3`), which `initialize` relies on.
    timm's head API: `forward_features`, `forward_head(x, pre_logits=False)`, `get_classifier()`,
    `reset_classifier(num_classes)`, `num_features`. The PReLUs use ``save_output``: nothing in
    these nets modifies an activation in place.

    Args:
        spec: the architecture table.
        name: the registry name, recorded in `build_args` so a checkpoint can rebuild the model.
        num_classes: outputs of the classifier.
        in_chans: input channels.
        act: one of `ACTIVATIONS` or a class or factory (`make_activation`), after every conv and
            hidden fc layer. `build_args` records a class by its import path, which `create_model`
            does not take back.
        dropout: drop probability after each hidden fc layer's activation (paper: 0.5).
        width: multiplier of every conv layer's filter count (rounded, at least 1).
        fc_width: units of each hidden fc layer (None: the spec's, 4096 for all paper models).
        depths: convs per stage, one entry per stage (None or empty: the spec's).
        stem: "imagenet" (the paper's first layers) or "small" (3×3 stride-1 conv1, no first pool).
        spp_levels: SPP bins per side (None or empty: the spec's, or its small-stem levels).
        init: True: `rectifiers.initialize`'s defaults; False: PyTorch's own init.
    """

    def __init__(
        self,
        spec: NetSpec,
        *,
        name: str = "net",
        num_classes: int = 1000,
        in_chans: int = 3,
        act: ActLayer = "relu",
        dropout: float = 0.5,
        width: float = 1.0,
        fc_width: int | None = None,
        depths: Sequence[int] | None = None,
        stem: str = "imagenet",
        spp_levels: Sequence[int] | None = None,
        init: bool = True,
    ) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_chans", in_chans)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
        if not isinstance(init, bool):
            raise ValueError(f"unknown init {init!r}: True (rectifiers.initialize's defaults) or False")

        if depths:
            depths = tuple(depths)
            if len(depths) != len(spec.stages):
                raise ValueError(f"depths needs one entry per stage ({len(spec.stages)}), got {depths}")
            for depth in depths:
                _check_positive_int("every entry of depths", depth)
            spec = dataclasses.replace(
                spec, stages=tuple(s._replace(repeats=d) for s, d in zip(spec.stages, depths, strict=True))
            )
        fc_dims = spec.fc if fc_width is None else (fc_width,) * len(spec.fc)
        for units in fc_dims:
            _check_positive_int("fc_width", units)
        if not spp_levels:
            spp_levels = spec.small_spp_levels if stem == "small" else spec.spp_levels
        spp = SpatialPyramidPool2d(tuple(spp_levels))

        self.features, channels = _build_features(spec, in_chans, act, width, stem)
        self.head = _build_head(spp, channels, fc_dims, num_classes, act, dropout)
        self.num_features = fc_dims[-1] if fc_dims else spp.output_features(channels)
        self.num_classes = num_classes
        self.init = init
        act_name = getattr(act, "__qualname__", None)  # None for a functools.partial: its repr stands in
        self.build_args: dict[str, Any] = {
            "name": name,
            "num_classes": num_classes,
            "in_chans": in_chans,
            "act": act if isinstance(act, str) else f"{act.__module__}.{act_name}" if act_name else repr(act),
            "dropout": dropout,
            "width": width,
            "fc_width": fc_dims[0] if fc_dims else None,
            "depths": [s.repeats for s in spec.stages],
            "stem": stem,
            "spp_levels": list(spp.levels),
            "init": init,
        }
        if init:
            from rectifiers.init import initialize

            initialize(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """The conv part, (N, C_in, H, W) → (N, C, h, w); fully convolutional, any input size."""
        return self.features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """SPP and the fc layers: (N, C, h, w) for any h, w ≥ 1 → (N, num_classes) scores, or with
        ``pre_logits`` the (N, num_features) input of the classifier."""
        *body, classifier = self.head
        x = features
        for layer in body:
            x = layer(x)
        return x if pre_logits else classifier(x)

    def get_classifier(self) -> nn.Module:
        """The last fc layer (the classifier), as in timm."""
        return self.head[-1]

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` classes (0: none, the model returns its pre-logits),
        initialized as this model's `init` says."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        if num_classes == 0:
            new: nn.Module = nn.Identity()
        else:
            reference = next(self.head.parameters())
            new = nn.Linear(self.num_features, num_classes, device=reference.device, dtype=reference.dtype)
            if self.init:
                from rectifiers.init import initialize

                initialize(new)
        self.head[-1] = new  # under the old one's name
        self.num_classes = num_classes
        self.build_args["num_classes"] = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_size(self, input_size: int | Sequence[int]) -> tuple[int, int]:
        """(h, w) of the map `forward_features` returns for an input of `input_size` (side, (H, W) or
        (C, H, W)); e.g. 14×14 for model A at 224 px, the window of dense testing.

        Raises ValueError if some layer's output would be empty (the input is too small).
        """
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)[-2:]
        h, w = size
        for name, layer in self.features.named_children():
            if isinstance(layer, nn.Conv2d | nn.MaxPool2d):
                h, w = (_out_size(s, layer, axis) for axis, s in enumerate((h, w)))
                if h < 1 or w < 1:
                    raise ValueError(f"input {tuple(size)} is too small: {name} would output {h}×{w}")
        return h, w

    def num_slopes(self) -> int:
        """Number of learned PReLU slopes (0 for ReLU and leaky ReLU)."""
        return count_slopes(self)

    @property
    def depth(self) -> int:
        """Weight layers, conv + fc, as the paper counts depth."""
        return sum(isinstance(m, nn.Conv2d | nn.Linear) for m in self.modules())


def _check_positive_int(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


def _out_size(size: int, layer: nn.Conv2d | nn.MaxPool2d, axis: int) -> int:
    settings = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)  # ints or per-axis tuples
    k, s, p, d = (v[axis] if isinstance(v, tuple) else v for v in settings)
    span = size + 2 * p - d * (k - 1) - 1
    if isinstance(layer, nn.MaxPool2d) and layer.ceil_mode:
        return -(-span // s) + 1
    return span // s + 1


def _build_features(
    spec: NetSpec, in_chans: int, act: ActLayer, width: float, stem: str
) -> tuple[nn.Sequential, int]:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_chans
    group = 1  # numbering of conv groups: conv1 is the stem, conv2_x the first stage, ...
    if spec.stem is not None:
        out, kernel, stride, padding = spec.stem
        if stem == "small":
            kernel, stride, padding = 3, 1, 1
        out = _scaled(out, width)
        layers["conv1"], layers["act1"] = conv_act(
            channels, out, kernel, stride=stride, padding=padding, act=act, save_output=True
        )
        channels = out
        if spec.stem_pool is not None and stem != "small":
            layers["pool1"] = nn.MaxPool2d(*spec.stem_pool)
        group = 2
    for i, stage in enumerate(spec.stages):
        out = _scaled(stage.channels, width)
        for j in range(stage.repeats):
            conv, activation = conv_act(
                channels, out, stage.kernel, padding=_padding(stage.kernel, j), act=act, save_output=True
            )
            layers[f"conv{group}_{j + 1}"], layers[f"act{group}_{j + 1}"] = conv, activation
            channels = out
        last = i == len(spec.stages) - 1
        if (not last or spec.final_pool) and not (spec.stem is None and i == 0 and stem == "small"):
            layers[f"pool{group}"] = nn.MaxPool2d(*spec.pool)
        group += 1
    return nn.Sequential(layers), channels


def _build_head(
    spp: SpatialPyramidPool2d,
    channels: int,
    fc_dims: Sequence[int],
    num_classes: int,
    act: ActLayer,
    dropout: float,
) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(spp=spp)
    features = spp.output_features(channels)
    for i, units in enumerate(fc_dims, start=1):
        layers[f"fc{i}"] = nn.Linear(features, units)
        layers[f"act{i}"] = make_activation(act, units, save_output=True)
        layers[f"drop{i}"] = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        features = units
    layers[f"fc{len(fc_dims) + 1}"] = nn.Linear(features, num_classes)
    return nn.Sequential(layers)


# --------------------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
NET_ARGS: tuple[str, ...] = tuple(
    name
    for name, p in inspect.signature(Net.__init__).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name != "name"
)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model builder under its function name for `create_model`.

    `create_model` checks a builder's `**kwargs` against `NET_ARGS`. Registering a name again (a
    notebook cell run twice) replaces the builder, with a warning.
    """
    name = fn.__name__
    if name in _REGISTRY:
        warnings.warn(f"model {name!r} was already registered; the new builder replaces it", stacklevel=2)
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model `name`, e.g. `create_model("model_a", act="prelu", num_classes=10)`.

    Raises ValueError for an unknown name or keyword argument, listing the valid ones."""
    fn = _REGISTRY.get(name)
    if fn is None:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid: Sequence[str] = NET_ARGS
    else:
        valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"model {name!r} has no argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return fn(**kwargs)


def _spec_builder(name: str) -> Callable[..., Net]:
    def build(**kwargs: Any) -> Net:
        return Net(SPECS[name], name=name, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"`Net` of the table `SPECS[{name!r}]` (described in the module docstring)."
    return build


for _name in SPECS:
    register_model(_spec_builder(_name))
