from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch
from torch import nn

from rectifiers import models
from rectifiers.activations import PReLU
from rectifiers.layers import ACTIVATIONS
from rectifiers.models import (
    SPECS,
    Net,
    NetSpec,
    Stage,
    count_slopes,
    create_model,
    list_models,
    register_model,
)

ALL = list_models()
TINY = {"width": 1 / 16, "fc_width": 16, "num_classes": 7}  # a few thousand parameters per model


def meta_model(name: str, **kwargs: object) -> Net:
    with torch.device("meta"):
        return create_model(name, init=False, **kwargs)


def test_registry_lists_the_paper_models() -> None:
    assert set(ALL) == {"model_a", "model_b", "model_c", "net14", "net22", "net30", "vgg19", "vgg_b"}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("stem", "size"), [("small", (32, 32)), ("small", (28, 36)), ("imagenet", (64, 64))])
def test_forward_backward(name: str, stem: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = create_model(name, stem=stem, act="prelu", **TINY)
    out = net(torch.randn(3, 3, *size))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("name", ALL)
def test_feature_size_matches_forward_features(name: str) -> None:
    net = create_model(name, init=False, **TINY).eval()
    for size in [(64, 64), (70, 90)]:
        assert net.feature_size(size) == tuple(net.forward_features(torch.zeros(1, 3, *size)).shape[-2:])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model_a", (14, 14)),
        ("model_c", (14, 14)),
        ("vgg19", (7, 7)),
        ("net14", (18, 18)),
        ("net30", (18, 18)),
    ],
)
def test_feature_size_at_224(name: str, expected: tuple[int, int]) -> None:
    net = meta_model(name)
    assert net.feature_size(224) == expected
    assert net.feature_size((3, 224, 224)) == expected


def test_feature_size_too_small() -> None:
    net = create_model("net14", init=False, **TINY)
    with pytest.raises(ValueError, match="too small"):
        net.feature_size(8)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_each_activation(act: str) -> None:
    torch.manual_seed(0)
    net = create_model("net14", stem="small", act=act, **TINY)
    kinds = {"relu": nn.ReLU, "prelu": PReLU, "prelu_shared": PReLU, "leaky_relu": nn.LeakyReLU}
    acts = [m for m in net.modules() if isinstance(m, kinds[act])]
    assert len(acts) == 13  # after 11 convs, fc1 and fc2; none after fc3
    assert not isinstance(net.head[-1], kinds[act])
    out = net(torch.randn(2, 3, 28, 28))
    out.sum().backward()
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_layer_names_follow_table1() -> None:
    net = meta_model("net14")
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs == ["features.conv1"] + [f"features.conv2_{i}" for i in range(1, 5)] + [
        f"features.conv3_{i}" for i in range(1, 7)
    ]
    fcs = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    assert fcs == ["head.fc1", "head.fc2", "head.fc3"]
    names = [n for n, _ in net.named_children()]
    assert names == ["features", "head"]
    # forward order: each conv is followed by its activation, which initialize(a="auto") relies on
    children = list(net.features.named_children())
    assert [n for n, _ in children[:4]] == ["conv1", "act1", "pool1", "conv2_1"]


def test_vgg_names_and_pools() -> None:
    net = meta_model("vgg_b")
    convs = [n for n, m in net.features.named_children() if isinstance(m, nn.Conv2d)]
    assert convs == [f"conv{s}_{i}" for s in range(1, 6) for i in (1, 2)]
    assert [n for n, m in net.features.named_children() if isinstance(m, nn.MaxPool2d)] == [
        f"pool{i}" for i in range(1, 6)
    ]
    assert net.head.fc1.in_features == 512 * 7 * 7  # the classic pool5 + flatten at 224 px
    small = meta_model("vgg_b", stem="small")
    assert "pool1" not in dict(small.features.named_children())
    assert small.head.spp.levels == (2,)


@pytest.mark.parametrize(
    ("name", "depth", "stage_depths"),
    [
        ("net14", 14, [4, 6]),
        ("net22", 22, [4, 14]),
        ("net30", 30, [4, 22]),
        ("model_a", 19, [5, 5, 5]),
        ("model_b", 22, [6, 6, 6]),
        ("model_c", 22, [6, 6, 6]),
        ("vgg19", 19, [2, 2, 4, 4, 4]),
        ("vgg_b", 13, [2] * 5),
    ],
)
def test_depths(name: str, depth: int, stage_depths: list[int]) -> None:
    net = meta_model(name)
    assert net.depth == depth
    assert net.build_args["depths"] == stage_depths


def test_depths_override() -> None:
    net = create_model("net14", depths=(2, 3), init=False, **TINY)
    assert net.depth == 1 + 2 + 3 + 3
    assert net.build_args["depths"] == [2, 3]
    with pytest.raises(ValueError, match="one entry per stage"):
        create_model("net14", depths=(2, 3, 4), **TINY)
    with pytest.raises(ValueError, match="depths"):
        create_model("net14", depths=(2, 0), **TINY)
    assert create_model("net14", depths=[], init=False, **TINY).build_args["depths"] == [4, 6]


def test_two_by_two_padding_alternates() -> None:
    net = meta_model("net30")
    pads = [m.padding[0] for n, m in net.features.named_children() if n.startswith("conv3_")]
    assert pads == [1, 0] * 11
    assert net.features.conv1.padding == (0, 0) and net.features.conv1.stride == (2, 2)


def test_width_fc_width_spp_in_chans() -> None:
    net = create_model(
        "model_a", width=0.25, fc_width=64, spp_levels=(3, 1), in_chans=1, num_classes=5, init=False
    )
    assert net.features.conv1.in_channels == 1 and net.features.conv1.out_channels == 24
    assert net.num_features == 64  # the width in front of the classifier
    assert net.head.fc1.in_features == 128 * 10 and net.head.fc1.out_features == 64
    assert net.head.fc3.out_features == 5
    assert net(torch.randn(1, 1, 40, 40)).shape == (1, 5)


def test_small_stem() -> None:
    net = create_model("net14", stem="small", width=0.25, fc_width=256, num_classes=10, init=False)
    assert net.features.conv1.kernel_size == (3, 3) and net.features.conv1.stride == (1, 1)
    assert "pool1" not in dict(net.features.named_children())
    assert net.head.spp.levels == (4, 2, 1)
    assert net.feature_size(28) == (14, 14) and net.feature_size(32) == (16, 16)


def test_dropout() -> None:
    net = create_model("net14", dropout=0.0, init=False, **TINY)
    assert isinstance(net.head.drop1, nn.Identity)
    assert create_model("net14", dropout=0.3, init=False, **TINY).head.drop2.p == 0.3
    # eval mode is deterministic, train mode with dropout is not
    net = create_model("net14", stem="small", **TINY)
    x = torch.randn(4, 3, 28, 28)
    net.eval()
    torch.testing.assert_close(net(x), net(x))


def test_num_slopes() -> None:
    wise, shared, relu = (meta_model("net14", act=act) for act in ("prelu", "prelu_shared", "relu"))
    assert wise.num_slopes() == 64 + 4 * 128 + 6 * 256 + 2 * 4096 == 10304  # paper.md 1.2 [derived]
    assert shared.num_slopes() == 13  # "11 conv + fc1 + fc2" (Sec. 2.1)
    assert relu.num_slopes() == 0
    assert count_slopes(nn.Sequential(nn.PReLU(5), PReLU(3))) == 8


def test_build_args_rebuild() -> None:
    net = create_model("net22", stem="small", act="prelu_shared", spp_levels=(3, 1), dropout=0.3, **TINY)
    args = net.build_args
    assert args["name"] == "net22" and args["spp_levels"] == [3, 1] and args["fc_width"] == 16
    again = create_model(**json.loads(json.dumps(args)))  # survives a JSON round trip
    assert again.build_args == args
    assert repr(again) == repr(net)  # the same modules and settings, also those without weights (dropout)
    again.load_state_dict(net.state_dict())  # strict: every key and shape
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(again.eval()(x), net.eval()(x))


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'model_z'.*model_a.*vgg_b"):
        create_model("model_z")
    with pytest.raises(ValueError, match=r"no argument\(s\) colour.*num_classes"):
        create_model("net14", colour="red")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"act": "tanh"}, "unknown activation"),
        ({"stem": "cifar"}, "unknown stem"),
        ({"init": "lecun"}, "unknown init"),
        ({"dropout": 1.0}, "dropout"),
        ({"width": 0}, "width"),
        ({"num_classes": 0}, "num_classes"),
        ({"fc_width": 0}, "fc_width"),
        ({"spp_levels": (0,)}, "SPP levels"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("net14", **{**TINY, **kwargs})


def test_custom_registered_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))  # registration undone afterwards
    spec = NetSpec(stages=(Stage(8, 3, 1),), spp_levels=(1,), fc=(4,))

    @register_model
    def _tiny_test_net(**kwargs: object) -> Net:
        return Net(spec, name="_tiny_test_net", **kwargs)

    net = create_model("_tiny_test_net", num_classes=3)
    assert net.depth == 3 and net(torch.randn(2, 3, 5, 5)).shape == (2, 3)


def _gain(a: float) -> float:
    return math.sqrt(2.0 / (1.0 + a * a))


@pytest.mark.parametrize(("act", "a"), [("relu", 0.0), ("prelu", 0.25), ("leaky_relu", 0.01)])
def test_default_init_is_the_trainers(act: str, a: float) -> None:
    """He's Eq. 14 on every layer, as `InitConfig()` (the trainer's default) gives it; the classifier,
    which no rectifier follows, with a = 1."""
    torch.manual_seed(0)
    net = create_model("net14", stem="small", width=0.25, fc_width=256, num_classes=10, act=act)
    for name, m in net.features.named_children():
        if isinstance(m, nn.Conv2d):
            k2d = m.kernel_size[0] * m.kernel_size[1] * m.out_channels  # Eq. 14: n̂ = k²d
            expected = _gain(a) / math.sqrt(k2d)
            tolerance = 4.0 / math.sqrt(2 * m.weight.numel())  # ~4 standard errors of a sample std
            assert m.weight.std().item() == pytest.approx(expected, rel=max(tolerance, 0.02)), name
            assert m.bias.abs().max().item() == 0.0
    fc_stds = (_gain(a) / math.sqrt(256), _gain(a) / math.sqrt(256), _gain(1.0) / math.sqrt(10))
    for fc, std in zip((net.head.fc1, net.head.fc2, net.head.fc3), fc_stds, strict=True):
        assert fc.weight.std().item() == pytest.approx(std, rel=0.05)
        assert fc.bias.abs().max().item() == 0.0


def test_init_true_and_false() -> None:
    torch.manual_seed(0)
    net = create_model("net14", stem="small", width=0.25, fc_width=256, init=True)
    fc2 = net.head.fc2
    assert fc2.weight.std().item() == pytest.approx(math.sqrt(2.0 / 256), rel=0.05)  # Eq. 14 fan_out, a = 0
    raw = create_model("net14", stem="small", width=0.25, fc_width=256, init=False)
    # PyTorch's own default: uniform with bound 1/sqrt(fan_in), std 1/sqrt(3·fan_in)
    assert raw.head.fc2.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 256), rel=0.05)


@pytest.mark.parametrize("name", ALL)
def test_full_size_models_build_on_meta(name: str) -> None:
    net = meta_model(name, act="prelu")
    assert all(p.is_meta for p in net.parameters())
    assert net.head.fc3.out_features == 1000 and net.build_args["name"] == name


def test_specs_table() -> None:
    assert SPECS["model_a"].stem == (96, 7, 2, 3) and SPECS["model_a"].stem_pool == (2, 2)
    assert [s.channels for s in SPECS["model_c"].stages] == [384, 768, 896]
    assert SPECS["net14"].spp_levels == (6, 3, 2, 1) and SPECS["model_b"].spp_levels == (7, 3, 2, 1)


# ------------------------------------------------------------------------------- timm's conventions


def test_head_api_of_timm() -> None:
    net = create_model("net14", stem="small", **TINY).eval()
    x = torch.randn(2, 3, 28, 28)
    assert net.get_classifier() is net.head.fc3
    features = net.forward_features(x)
    pre = net.forward_head(features, pre_logits=True)
    assert pre.shape == (2, net.num_features) == (2, 16)
    torch.testing.assert_close(net.get_classifier()(pre), net.forward_head(features))
    torch.testing.assert_close(net.forward_head(features), net(x))


@pytest.mark.parametrize("init", [True, False])
def test_reset_classifier_fine_tunes_on_a_new_class_count(init) -> None:
    net = create_model("net14", stem="small", init=init, **TINY)
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head.fc3")}
    net.reset_classifier(3)
    assert net(torch.randn(2, 3, 28, 28)).shape == (2, 3)
    assert net.num_classes == 3 and net.build_args["num_classes"] == 3
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # nothing else touched
    fc = net.get_classifier()
    if init:
        assert torch.count_nonzero(fc.bias) == 0
    if init:  # Eq. 14 with a = 1 (no rectifier follows), n = the 3 outputs
        assert float(fc.weight.detach().std()) == pytest.approx(1 / math.sqrt(3), rel=0.3)
    again = create_model(**net.build_args)  # a checkpoint's model_args rebuild the new head
    again.load_state_dict(net.state_dict())


def test_reset_classifier_to_zero_classes_gives_the_pre_logits() -> None:
    net = create_model("net14", stem="small", **TINY).eval()
    x = torch.randn(2, 3, 28, 28)
    net.reset_classifier(0)
    assert isinstance(net.get_classifier(), nn.Identity)
    torch.testing.assert_close(net(x), net.forward_head(net.forward_features(x), pre_logits=True))


def test_create_model_takes_an_activation_class() -> None:
    net = create_model("net14", stem="small", act=nn.SiLU, init=False, **TINY)
    assert sum(isinstance(m, nn.SiLU) for m in net.modules()) == 11 + 2  # every conv, fc1, fc2
    assert net(torch.randn(1, 3, 28, 28)).shape == (1, 7)


def test_create_model_takes_a_partial_as_make_activation_documents_it() -> None:
    net = create_model("net14", stem="small", act=partial(nn.LeakyReLU, 0.2), init=False, **TINY)
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2} and "LeakyReLU" in net.build_args["act"]
    json.dumps(net.build_args)  # still a plain description


def test_registering_a_name_twice_warns_and_overwrites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))  # registration undone afterwards

    def tiny_twice(**kwargs):
        return nn.Linear(2, 2)

    def tiny_twice_again(**kwargs):
        return nn.Linear(2, 3)

    tiny_twice_again.__name__ = "tiny_twice"
    register_model(tiny_twice)
    with pytest.warns(UserWarning, match="tiny_twice"):
        register_model(tiny_twice_again)
    assert create_model("tiny_twice").out_features == 3


@pytest.mark.parametrize("name", ALL)
def test_the_papers_nets_keep_prelu_outputs_and_modify_none_in_place(name: str) -> None:
    """They opt into PReLU's output-saving backward, which is only safe with no in-place op after it."""
    net = meta_model(name, act="prelu")
    prelus = [m for m in net.modules() if isinstance(m, PReLU)]
    assert prelus and all(m.save_output for m in prelus)
    assert not [m for m in net.modules() if getattr(m, "inplace", False)]


def test_a_papers_net_trains_with_output_saving_prelus() -> None:
    net = create_model("net14", stem="small", act="prelu", **TINY)
    net(torch.randn(2, 3, 28, 28)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_net_init_and_the_trainers_init_are_one_path() -> None:
    """`Net(init=True)` and the trainer (`InitConfig().apply`, what `fit` runs on a registry model
    built with init=False) give the same weights from the same seed."""
    from rectifiers.config import InitConfig

    kw = {"stem": "small", "width": 0.25, "fc_width": 32, "num_classes": 10}
    torch.manual_seed(0)
    net = create_model("net14", init=True, **kw)
    torch.manual_seed(0)
    trainer = create_model("net14", init=False, **kw)
    InitConfig().apply(trainer)
    for (name, p), q in zip(net.state_dict().items(), trainer.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_net_init_takes_only_a_bool() -> None:
    with pytest.raises(ValueError, match="unknown init .he_fc.: True"):
        create_model("net14", stem="small", init="he_fc", **TINY)
