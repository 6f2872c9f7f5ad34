"""Property-based tests. For any input, `prelu`, the init functions, SPP and the config parser
give either the right answer (checked against a plain reference) or a clear ValueError/TypeError;
never another exception, a hang or a silently wrong result.

Example counts stay modest so the default run stays fast; hypothesis keeps the failures it finds in
`.hypothesis/` and tries them first next time.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rectifiers.activations import prelu, prelu_reference
from rectifiers.config import RunConfig, load_config, parse_override, set_value, valid_keys
from rectifiers.init import (
    MODES,
    he_normal_,
    he_std,
    he_uniform_,
    xavier_normal_,
    xavier_std,
    xavier_uniform_,
)
from rectifiers.layers import SpatialPyramidPool2d

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = (torch.float32, torch.float64, torch.bfloat16)
SPECIALS = (float("nan"), float("inf"), float("-inf"), 0.0, -0.0)


def _fails_clearly(err: Exception, *words: str) -> None:
    """A refusal must be a ValueError/TypeError whose message says what is wrong."""
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__}: {err}"
    text = str(err)
    assert text and all(w in text for w in words), f"unclear message: {text!r} (expected {words})"


# ------------------------------------------------------------------------------------------- prelu


@st.composite
def prelu_inputs(draw):
    rank = draw(st.integers(1, 5))
    shape = draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
    dtype = draw(st.sampled_from(DTYPES))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    for _ in range(draw(st.integers(0, 3))):  # special values at random places
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from(SPECIALS))
    x = x.to(dtype)
    layout = draw(st.sampled_from(("contiguous", "channels_last", "transposed", "strided")))
    if layout == "channels_last" and rank in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if rank == 4 else torch.channels_last_3d)
    elif layout == "transposed" and rank >= 2:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)  # same shape, reversed strides
    elif layout == "strided":
        x = torch.cat([x, x], dim=-1)[..., ::2]  # a view with a step
    dim = draw(st.integers(-rank - 1, rank))
    channels = x.shape[dim % rank] if -rank <= dim < rank else 1
    count = draw(st.sampled_from((1, channels, channels + 1, 3)))
    weight = torch.rand(count, generator=gen, dtype=torch.float64) * 2 - 0.5
    return x, weight.to(draw(st.sampled_from((torch.float32, torch.float64)))), dim


@SETTINGS
@given(prelu_inputs())
def test_prelu_matches_eq1_or_refuses_clearly(args):
    x, weight, dim = args
    rank = x.dim()
    effective = 0 if rank == 1 and dim == 1 else dim  # a 1-D input is one vector of channels
    try:
        out = prelu(x, weight, dim)
    except Exception as err:
        if not -rank <= effective < rank:
            _fails_clearly(err, "out of range", str(dim))
        else:
            channels = x.shape[effective]
            assert weight.numel() not in (1, channels), f"refused a valid call: {err}"
            _fails_clearly(err, str(weight.numel()), str(channels))
        return
    assert -rank <= effective < rank and weight.numel() in (1, x.shape[effective])
    # Eq. 1 in float64 from the slope in the input's dtype (what the kernel multiplies by), rounded once:
    # products of two float32 or two bfloat16 values are exact in float64, so the results are equal.
    shape = [1] * rank
    if weight.numel() > 1:
        shape[effective % rank] = weight.numel()
    x64, a64 = x.double(), weight.to(x.dtype).double().view(shape)
    expected = torch.where(x64 > 0, x64, a64 * x64).to(x.dtype)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(rank)
    if fmt is not None and x.is_contiguous(memory_format=fmt) and not x.is_contiguous():
        assert out.is_contiguous(memory_format=fmt), "the output lost the input's memory format"


@SETTINGS
@given(prelu_inputs())
def test_prelu_gradients_match_the_reference(args):
    x, weight, dim = args
    x = x.double().nan_to_num(0.0, 1.0, -1.0).requires_grad_()
    weight = weight.double().requires_grad_()
    try:
        out = prelu(x, weight, dim)
    except ValueError:
        return  # refusals are checked above
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, weight), grad)
    want = torch.autograd.grad(prelu_reference(x, weight, dim), (x, weight), grad)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want[1], rtol=1e-12, atol=1e-12)


@given(st.sampled_from((torch.int64, torch.int32, torch.uint8, torch.bool)))
@settings(max_examples=8, deadline=None)
def test_prelu_refuses_integer_inputs(dtype):
    with pytest.raises(ValueError, match="floating"):
        prelu(torch.ones(2, 3, dtype=dtype), torch.ones(3))


# -------------------------------------------------------------------------------------------- init

SHAPES = st.lists(st.integers(-1, 6), min_size=0, max_size=5)
SLOPES = st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from(SPECIALS), st.just("0.25"))


def _fans(shape: list[int], groups: int) -> tuple[int, int]:
    k = math.prod(shape[2:])
    return shape[1] * k, shape[0] // groups * k


@SETTINGS
@given(SHAPES, SLOPES, st.one_of(st.sampled_from(MODES), st.text(max_size=8)), st.integers(-1, 4))
def test_he_std_is_eq15_or_a_clear_error(shape, a, mode, groups):
    try:
        std = he_std(shape, a=a, mode=mode, groups=groups)
    except Exception as err:
        _fails_clearly(err)
        bad_slope = not isinstance(a, float) or not math.isfinite(a)
        bad_shape = len(shape) < 2 or min(shape) < 0 or groups < 1 or shape[0] % groups != 0
        if not (bad_slope or bad_shape or mode not in MODES):
            n = dict(zip(("fan_in", "fan_out"), _fans(shape, groups), strict=True))
            n["fan_avg"] = (n["fan_in"] + n["fan_out"]) / 2
            assert n[mode] == 0, f"refused a valid call: {err}"
        return
    assert isinstance(a, float) and math.isfinite(a) and mode in MODES
    fan_in, fan_out = _fans(shape, groups)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    assert math.isclose(std, math.sqrt(2.0 / ((1.0 + a * a) * n)), rel_tol=1e-12)
    assert math.isfinite(std) and std > 0
    assert math.isclose(xavier_std(shape, mode=mode, groups=groups), 1 / math.sqrt(n), rel_tol=1e-12)


@SETTINGS
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=5),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from(MODES),
    st.sampled_from((he_normal_, he_uniform_, xavier_normal_, xavier_uniform_)),
    st.integers(0, 2**31),
)
def test_init_fills_in_place_reproducibly_or_refuses(shape, a, mode, fill, seed):
    tensor = torch.full(shape, float("nan"))
    kwargs = {"a": a, "mode": mode} if fill in (he_normal_, he_uniform_) else {"mode": mode}
    try:
        out = fill(tensor, generator=torch.Generator().manual_seed(seed), **kwargs)
    except Exception as err:
        _fails_clearly(err)
        assert len(shape) < 2 or 0 in shape, f"refused a valid call: {err}"
        return
    assert out is tensor and bool(torch.isfinite(out).all())
    again = fill(torch.empty(shape), generator=torch.Generator().manual_seed(seed), **kwargs)
    assert torch.equal(out, again)
    if fill in (he_uniform_, xavier_uniform_) and out.numel():
        std = he_std(shape, a, mode) if fill is he_uniform_ else xavier_std(shape, mode)
        assert float(out.abs().max()) <= math.sqrt(3) * std * (1 + 1e-6)


# --------------------------------------------------------------------------------------------- SPP


def _spp_reference(x: torch.Tensor, levels: list[int]) -> torch.Tensor:
    """Bin i of n along a side of length L covers [floor(i·L/n), ceil((i+1)·L/n)), as in the docstring."""
    h, w = x.shape[-2:]
    out = []
    for n in levels:
        rows = [(i * h // n, -(-(i + 1) * h // n)) for i in range(n)]
        cols = [(j * w // n, -(-(j + 1) * w // n)) for j in range(n)]
        level = torch.stack(
            [torch.stack([x[:, :, r0:r1, c0:c1].amax(dim=(2, 3)) for c0, c1 in cols], -1) for r0, r1 in rows],
            -2,
        )  # (N, C, n, n)
        out.append(level.flatten(1))
    return torch.cat(out, dim=1)


@SETTINGS
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 12),
    st.lists(st.integers(-1, 8), min_size=0, max_size=4),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_spp_bins_any_map_or_refuses(n, c, h, w, levels, channels_last, seed):
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    if seed % 5 == 0:
        x[0, 0, 0, 0] = float("nan")  # max pooling must propagate it, not skip it
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    try:
        spp = SpatialPyramidPool2d(levels)
    except Exception as err:
        _fails_clearly(err)
        assert not levels or min(levels) < 1, f"refused valid levels {levels}: {err}"
        return
    assert levels and min(levels) >= 1
    out = spp(x)
    assert out.shape == (n, c * sum(k * k for k in levels)) == (n, spp.output_features(c))
    torch.testing.assert_close(out, _spp_reference(x, levels), rtol=0, atol=0, equal_nan=True)


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=0, max_size=6).filter(lambda s: len(s) != 4))
def test_spp_refuses_inputs_that_are_not_nchw(shape):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        SpatialPyramidPool2d((2, 1))(torch.zeros(shape))


@SETTINGS
@given(st.sampled_from([(2.0,), (True,), ("3",), (0,), (1, -2), ()]))
def test_spp_refuses_bad_levels(levels):
    with pytest.raises(ValueError, match="level"):
        SpatialPyramidPool2d(levels)


# ------------------------------------------------------------------------------------------ config

SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=4), SCALARS, max_size=2)
)
KEYS = st.one_of(st.sampled_from(valid_keys()), st.text(max_size=20))


@SETTINGS
@given(st.dictionaries(KEYS, VALUES, max_size=4))
def test_config_accepts_or_rejects_any_keys_and_values_clearly(values):
    config = RunConfig()
    try:
        for key, value in values.items():
            set_value(config, key, value)
        config.validate()
    except Exception as err:
        _fails_clearly(err)
        assert any(k in str(err) or repr(k) in str(err) for k in values), f"the message names no key: {err}"
        return
    assert set(values) <= set(valid_keys())
    for key, value in values.items():  # a value of the field's own type is taken as it is
        section, _, name = key.partition(".")
        got = getattr(getattr(config, section), name)
        if type(got) is type(value):
            assert got == value, f"{key}: asked for {value!r}, got {got!r}"
    assert RunConfig.from_dict(config.to_dict()) == config  # what a checkpoint stores reads back


@SETTINGS
@given(st.text(max_size=30))
def test_set_override_text_round_trips_or_is_refused(text):
    try:
        key, value = parse_override(text)
    except Exception as err:
        _fails_clearly(err, "key=value")
        assert "=" not in text or not text.partition("=")[0].strip()
        return
    assert parse_override(f"{key}={value}") == (key, value)
    try:
        config = load_config(None, {key: value})
    except Exception as err:
        _fails_clearly(err)
        return
    assert dataclasses.asdict(config) == RunConfig.from_dict(config.to_dict()).to_dict()


@SETTINGS
@given(st.text(max_size=200))
def test_config_file_of_any_text_loads_or_fails_clearly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "run.toml"
    path.write_text(text)
    try:
        load_config(path)
    except Exception as err:
        _fails_clearly(err)
        assert str(path) in str(err) or "config key" in str(err) or "must" in str(err), str(err)


@SETTINGS
@given(
    st.sampled_from(valid_keys()),
    st.sampled_from(["[1, 2]", "{ a = 1 }", "1979-05-27", "inf", "nan", '"x"', "true"]),
)
def test_toml_values_of_the_wrong_type_name_the_key(tmp_path_factory, key, value):
    section, _, name = key.partition(".")
    path = tmp_path_factory.mktemp("toml") / "run.toml"
    path.write_text(f"[{section}]\n{name} = {value}\n")
    try:
        load_config(path)
    except Exception as err:
        _fails_clearly(err, section)
