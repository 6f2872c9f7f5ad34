from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from helpers import tiny_overrides  # noqa: E402
from rectifiers import load_model  # noqa: E402
from rectifiers.activations import PReLU  # noqa: E402
from rectifiers.checkpoint.inference import swap_to_torch_modules  # noqa: E402
from rectifiers.checkpoint.store import load_checkpoint, save_checkpoint  # noqa: E402
from rectifiers.cli import main  # noqa: E402
from rectifiers.config import load_config  # noqa: E402
from rectifiers.engine import fit  # noqa: E402
from rectifiers.export import (  # noqa: E402
    canonicalize_prelu_slopes,
    export_checkpoint,
    prelu_slope_shapes,
    second_size,
    verify_onnx,
)
from rectifiers.models import create_model  # noqa: E402

CROP = 16


def _random_slopes(model: nn.Module, seed: int) -> None:
    """Trained-looking slopes: different per layer and channel, some negative."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.8 - 0.2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained net14 (channel-wise PReLU, 1 channel, 16 px) with random slopes."""
    out = tmp_path_factory.mktemp("run")
    fit(load_config(None, tiny_overrides(out)))
    state = load_checkpoint(out / "best.pt")
    model = load_model(out / "best.pt")
    _random_slopes(model, 0)
    state["model"] = model.state_dict()
    return save_checkpoint(state, out / "slopes.pt")


@pytest.fixture(scope="module")
def shared_checkpoint(checkpoint: Path) -> Path:
    """The same net with channel-shared PReLU and random weights."""
    state = load_checkpoint(checkpoint)
    state["model_args"] = {**state["model_args"], "act": "prelu_shared"}
    torch.manual_seed(1)
    model = create_model(**state["model_args"])
    _random_slopes(model, 1)
    state["model"] = model.state_dict()
    return save_checkpoint(state, checkpoint.with_name("shared.pt"))


@pytest.fixture(scope="module")
def dynamic_export(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return export_checkpoint(checkpoint, path, dynamic_size=True, samples=8)


# ------------------------------------------------------------------------------------- load_model


@pytest.mark.parametrize("which", ["checkpoint", "shared_checkpoint"])
def test_load_model_is_ready_and_torch_modules_give_equal_outputs(which: str, request):
    path = request.getfixturevalue(which)
    model = load_model(path)
    assert not model.training and model.classes == ["class0", "class1", "class2", "class3"]
    ours = [m for m in model.modules() if isinstance(m, PReLU)]
    assert ours and len({m.num_parameters for m in ours}) == (1 if which == "shared_checkpoint" else 3)
    plain = load_model(path, to_torch_modules=True)
    assert not plain.training
    assert not any(isinstance(m, PReLU) for m in plain.modules())
    torch_prelus = [m for m in plain.modules() if isinstance(m, nn.PReLU)]
    assert [m.weight.shape for m in torch_prelus] == [m.weight.shape for m in ours]
    x = torch.randn(4, 1, CROP, CROP) * 3
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=0)
        # the negative side matters: with random slopes a wrong slope would show
        torch.testing.assert_close(plain(-x), model(-x), rtol=0, atol=0)


def test_swap_keeps_dtype_device_grad_and_mode():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), PReLU(4, init=0.1), nn.Flatten(), PReLU()).double().train()
    model[1].weight.requires_grad_(False)
    swapped = swap_to_torch_modules(model)
    assert swapped is model
    first, last = model[1], model[3]
    assert isinstance(first, nn.PReLU) and isinstance(last, nn.PReLU)
    assert first.weight.dtype == torch.float64 and first.training
    assert not first.weight.requires_grad and last.weight.requires_grad
    assert torch.equal(first.weight, torch.full((4,), 0.1).double())  # the float32 init, cast
    alone = swap_to_torch_modules(PReLU(3))
    assert isinstance(alone, nn.PReLU) and alone.num_parameters == 3
    with pytest.raises(ValueError, match="dim"):
        swap_to_torch_modules(nn.Sequential(PReLU(4, dim=-1)))


# ------------------------------------------------------------------------------------- slopes


def _graph_with_slopes():
    """(N, 3, 4, 4) -> PRelu(slope (1, 3, 1, 1)) -> PRelu(shared (1, 1, 1, 1)) -> Mul by the first
    slope -> flatten -> PRelu(slope (1, 48)): the shapes the dynamo exporter writes."""
    from onnx import TensorProto, helper, numpy_helper

    gen = torch.Generator().manual_seed(0)
    conv_slope = torch.rand(1, 3, 1, 1, generator=gen).numpy()
    inits = [
        numpy_helper.from_array(conv_slope, "s_conv"),
        numpy_helper.from_array(torch.full((1, 1, 1, 1), 0.3).numpy(), "s_shared"),
        numpy_helper.from_array(torch.rand(1, 48, generator=gen).numpy(), "s_fc"),
    ]
    nodes = [
        helper.make_node("PRelu", ["x", "s_conv"], ["a"], name="p_conv"),
        helper.make_node("PRelu", ["a", "s_shared"], ["b"], name="p_shared"),
        helper.make_node("Mul", ["b", "s_conv"], ["c"], name="mul"),  # the slope feeds another op too
        helper.make_node("Flatten", ["c"], ["d"], axis=1),
        helper.make_node("PRelu", ["d", "s_fc"], ["y"], name="p_fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 48])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(proto, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def test_canonical_slopes_are_c11_and_c_and_compute_the_same(tmp_path: Path):
    proto = _graph_with_slopes()
    x = torch.randn(2, 3, 4, 4)
    before = _run(proto, x)
    assert canonicalize_prelu_slopes(proto) == 3
    onnx.checker.check_model(proto, full_check=True)
    inits = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    slopes = [inits[n.input[1]] for n in proto.graph.node if n.op_type == "PRelu"]
    assert slopes == [(3, 1, 1), (1,), (48,)]
    mul = next(n for n in proto.graph.node if n.op_type == "Mul")
    assert inits[mul.input[1]] == (1, 3, 1, 1)  # the other consumer keeps its own shape
    torch.testing.assert_close(_run(proto, x), before, rtol=0, atol=0)
    onnx.save_model(proto, str(tmp_path / "g.onnx"))
    assert prelu_slope_shapes(tmp_path / "g.onnx") == [(3, 1, 1), (1,), (48,)]


def test_a_slope_on_two_axes_is_refused():
    proto = _graph_with_slopes()
    from onnx import numpy_helper

    bad = numpy_helper.from_array(torch.rand(1, 3, 4, 1).numpy(), "s_conv")
    proto.graph.initializer[0].CopyFrom(bad)
    with pytest.raises(RuntimeError, match="not per channel"):
        canonicalize_prelu_slopes(proto)


# ------------------------------------------------------------------------------------- export


def test_dynamic_export_matches_pytorch_at_two_sizes(dynamic_export, checkpoint: Path):
    report = dynamic_export
    onnx.checker.check_model(str(report.path), full_check=True)
    model = load_model(checkpoint)
    convs = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    assert report.slope_shapes == [(c, 1, 1) for c in convs] + [(f,) for f in fcs]
    sizes = {row["size"] for row in report.checks}
    assert sizes == {(CROP, CROP), second_size(CROP)}
    assert {row["kind"] for row in report.checks} == {"random", "real"}
    for row in report.checks:
        assert row["max_abs_diff"] < 1e-4, row
    # any other size and batch, including a batch of 1
    for shape in [(1, 1, 20, 20), (3, 1, 13, 30)]:
        assert verify_onnx(report.path, model, torch.randn(shape)) < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    assert json.loads(meta["rectifiers.classes"]) == model.classes
    norm = json.loads(meta["rectifiers.normalization"])
    assert norm["mode"] == "channel" and len(norm["mean"]) == 1
    assert "Warning" not in str(report)


def test_verify_sees_a_different_model(dynamic_export, checkpoint: Path):
    model = load_model(checkpoint)
    with torch.no_grad():
        model.head.fc3.bias.add_(0.01)
    assert verify_onnx(dynamic_export.path, model, torch.randn(2, 1, CROP, CROP)) == pytest.approx(
        0.01, rel=1e-3
    )


def test_cli_export_with_normalization_in_a_fixed_size_graph(checkpoint: Path, tmp_path: Path, capsys):
    path = tmp_path / "fixed.onnx"
    assert main(["export", str(checkpoint), "--onnx", str(path), "--include-normalization"]) == 0
    out = capsys.readouterr().out
    assert "onnx.checker: ok" in out and "max abs difference" in out and "in the graph" in out
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, CROP, CROP]
    # the graph takes 0..255 pixels: equal to the model on normalized pixels
    model = load_model(checkpoint)
    from rectifiers.checkpoint.inference import load_member

    normalize = load_member(checkpoint).normalize
    pixels = torch.randint(0, 256, (3, 1, CROP, CROP)).float()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": pixels.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(got, model(normalize(pixels)), rtol=0, atol=1e-4)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"input": torch.zeros(1, 1, CROP + 4, CROP).numpy()})


def test_export_refuses_bad_arguments(checkpoint: Path, tmp_path: Path):
    model = load_model(checkpoint)
    from rectifiers.export import export_onnx

    with pytest.raises(ValueError, match="input_size"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(CROP, CROP))
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(model, tmp_path / "m.bin", input_size=(1, CROP, CROP))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(1, CROP, CROP), opset=0)


def test_cli_export_writes_beside_the_checkpoint_by_default(checkpoint: Path, tmp_path: Path, monkeypatch):
    # The working directory stays clean: the ONNX file goes with its checkpoint (inside runs/).
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(checkpoint), "--samples", "2"]) == 0
    assert checkpoint.with_suffix(".onnx").is_file()
    assert not list(tmp_path.iterdir())
