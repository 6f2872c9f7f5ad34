"""Forward and backward signal variance of any model, measured beside the paper's theory
(Sec. 2.2, Eq. 5-13).

For every Conv1d/2d/3d, ConvTranspose1d/2d/3d and Linear layer l, in the order the forward pass calls
them:

- forward: the measured Var[y_l] of its response, E[x_l²] at its input, and the predictions
      Eq. 7:  Var[y_l] = n_l · Var[w_l] · E[x_l²]            (one layer, E[x_l²] measured)
      Eq. 9:  Var[y_l] = Var[y_1] · Π_{k=2..l} ½(1 + a_k²) · n_k · Var[w_k]   (chained from layer 1)
- backward (a gradient r ~ N(0, 1) injected at the model's output): the measured Var[Δy_l] at the
  response and Var[Δx_l] at the input, and the predictions
      Eq. 12: Var[Δx_l] = n̂_l · Var[w_l] · Var[Δy_l]         (one layer, Var[Δy_l] measured)
      Eq. 13: Var[Δx_l] = Var[Δy_L] · n̂_L Var[w_L] · Π_{k=l..L-1} ½(1 + a_k²) · n̂_k · Var[w_k]

Var[w_l] is the model's actual weights' variance, so the theory follows any initialization; a_k is
the rectifier between layers (`weight_layers`; 1 where none). Pooling, normalization, zero padding
and finite width move the measurement off the chained prediction, and the laws hold in expectation
only, so `signal_variance_over_draws` reports the geometric mean and spread over several draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rectifiers.init import calculate_fans, variance_chain, weight_layers
from rectifiers.text_table import aligned_lines, cell

__all__ = [
    "VarianceDraws",
    "VarianceReport",
    "VarianceRow",
    "signal_variance",
    "signal_variance_over_draws",
]

# The whole-net ratios a report gives, measured and by the paper's equations, as `to_dict` names them.
RATIOS = ("forward_ratio", "forward_ratio_eq9", "backward_ratio", "backward_ratio_eq13")


@dataclass
class VarianceRow:
    """One call of a weight layer. ``None`` in the backward fields when backward was not run."""

    depth: int  # l, 1-based, in execution order
    name: str
    kind: str
    n: float  # connections per response, k²·c/groups (Eq. 5); / prod(stride) for a transposed conv
    n_hat: float  # k²·d/groups (Eq. 11)
    var_w: float  # variance of the layer's actual weights
    slope_in: float | None  # rectifier before the layer (None: none)
    slope_out: float | None  # rectifier after the layer
    ex2: float  # measured E[x_l²] at the input
    var_y: float  # measured Var[y_l]
    var_y_eq7: float  # n_l · Var[w_l] · E[x_l²]
    var_y_eq9: float  # chained from the measured Var[y_1]
    var_dy: float | None = None  # measured Var[Δy_l]
    var_dx: float | None = None  # measured Var[Δx_l]
    var_dx_eq12: float | None = None  # n̂_l · Var[w_l] · Var[Δy_l]
    var_dx_eq13: float | None = None  # chained from the measured Var[Δy_L]


def _sci(value: float | None) -> str:
    return cell(value, ".3e")


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


@dataclass
class VarianceReport:
    """Per-layer measured and predicted signal variances (see the module docstring)."""

    rows: list[VarianceRow] = field(default_factory=list)

    @property
    def forward_ratio(self) -> float:
        """Measured Var[y_L] / Var[y_1]."""
        return self.rows[-1].var_y / self.rows[0].var_y

    @property
    def forward_ratio_eq9(self) -> float:
        """Π_{l=2..L} ½(1 + a_l²) · n_l · Var[w_l] (Eq. 9)."""
        return self.rows[-1].var_y_eq9 / self.rows[0].var_y_eq9

    @property
    def backward_ratio(self) -> float | None:
        """Measured Var[Δx_1] / Var[Δx_L]: the gradient at the first layer's input over the one at
        the last layer's input."""
        return _ratio(self.rows[0].var_dx, self.rows[-1].var_dx)

    @property
    def backward_ratio_eq13(self) -> float | None:
        """Π_{l=1..L-1} ½(1 + a_l²) · n̂_l · Var[w_l] (Eq. 13)."""
        return _ratio(self.rows[0].var_dx_eq13, self.rows[-1].var_dx_eq13)

    def __str__(self) -> str:
        header = ["l", "layer", "n", "n̂", "Var[w]", "E[x²]", "Var[y]", "Eq.7", "Eq.9"]
        backward = self.rows[0].var_dx is not None
        if backward:
            header += ["Var[Δy]", "Var[Δx]", "Eq.12", "Eq.13"]
        body = []
        for r in self.rows:
            cells = [str(r.depth), r.name, str(r.n), str(r.n_hat)]
            cells += [_sci(v) for v in (r.var_w, r.ex2, r.var_y, r.var_y_eq7, r.var_y_eq9)]
            if backward:
                cells += [_sci(v) for v in (r.var_dy, r.var_dx, r.var_dx_eq12, r.var_dx_eq13)]
            body.append(cells)
        lines = aligned_lines(header, body, left=2)
        lines.append(
            f"forward  Var[y_L]/Var[y_1]  measured {self.forward_ratio:.3g}, "
            f"Eq. 9 {self.forward_ratio_eq9:.3g}"
        )
        if backward:
            lines.append(
                f"backward Var[Δx_1]/Var[Δx_L] measured {_sci(self.backward_ratio)}, "
                f"Eq. 13 {_sci(self.backward_ratio_eq13)}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [asdict(r) for r in self.rows], **{name: getattr(self, name) for name in RATIOS}}

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Save a log-scale variance-vs-depth PNG: forward (Var[y_l]) and backward (Var[Δx_l])
        panels, measurement as markers, Eq. 9 / Eq. 13 as lines."""
        return _plot(path, self.rows, lambda attr: ([getattr(r, attr) for r in self.rows], None), title)


def _var(t: Tensor) -> float:
    return float(t.detach().float().var(correction=0))


def signal_variance(
    model: nn.Module, x: Tensor, backward: bool = True, generator: torch.Generator | None = None
) -> VarianceReport:
    """Every weight layer's forward (and backward) signal variance on input ``x`` beside Eq. 7/9
    (and Eq. 12/13).

    Runs in eval mode, restoring each module's mode. The backward differentiates sum(output · r),
    r ~ N(0, 1) from ``generator``, with respect to the input only, so no ``.grad`` is touched. A
    layer called twice appears twice (``name#2``).
    """
    layers = weight_layers(model)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no Conv1d/2d/3d, ConvTranspose1d/2d/3d or Linear layer to measure"
        )
    by_module = {id(layer.module): layer for layer in layers}
    calls: dict[str, int] = {}
    rows: list[VarianceRow] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        layer = by_module[id(module)]
        calls[layer.name] = calls.get(layer.name, 0) + 1
        name = layer.name if calls[layer.name] == 1 else f"{layer.name}#{calls[layer.name]}"
        fan_in, fan_out = calculate_fans(module)  # the module's groups and layout (transposed)
        x_in = inputs[0]
        var_w = _var(module.weight)
        ex2 = float(x_in.detach().float().pow(2).mean())
        row = VarianceRow(
            depth=len(rows) + 1,
            name=name,
            kind=type(module).__name__,
            n=fan_in,
            n_hat=fan_out,
            var_w=var_w,
            slope_in=layer.slope_in,
            slope_out=layer.slope_out,
            ex2=ex2,
            var_y=_var(output),
            var_y_eq7=fan_in * var_w * ex2,
            var_y_eq9=math.nan,  # chained below, once every layer is measured
        )
        rows.append(row)
        if backward:
            if x_in.requires_grad:
                x_in.register_hook(lambda g: setattr(row, "var_dx", _var(g)))
            output.register_hook(lambda g: setattr(row, "var_dy", _var(g)))

    handles = [layer.module.register_forward_hook(hook) for layer in layers]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        if backward:
            x_req = x.detach().requires_grad_(True)
            out = model(x_req)
            if not isinstance(out, Tensor):
                raise ValueError(f"signal_variance needs a model returning one tensor, got {type(out)}")
            r = torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)
            torch.autograd.grad(out, x_req, r)
        else:
            with torch.no_grad():
                model(x)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.train(training)
    if not rows:
        raise ValueError("the forward pass called none of the model's Conv/Linear layers")
    _chain(rows, backward)
    return VarianceReport(rows)


def _chain(rows: list[VarianceRow], backward: bool) -> None:
    """Fill the Eq. 9 / Eq. 13 columns, chained from the first layer's Var[y] and the last's Var[Δy]."""
    forward = variance_chain(((r.n, r.var_w, r.slope_in) for r in rows[1:]), start=rows[0].var_y)
    for row, value in zip(rows, forward, strict=True):
        row.var_y_eq9 = value
    if not backward:
        return
    for row in rows:
        if row.var_dy is not None:
            row.var_dx_eq12 = row.n_hat * row.var_w * row.var_dy
    last = rows[-1]
    if last.var_dx_eq12 is None:
        return
    earlier = ((r.n_hat, r.var_w, r.slope_out) for r in reversed(rows[:-1]))
    for row, value in zip(reversed(rows), variance_chain(earlier, start=last.var_dx_eq12), strict=True):
        row.var_dx_eq13 = value


def _geo(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Geometric mean, geometric std factor, min and max."""
    logs = [math.log(v) for v in values]
    mean = sum(logs) / len(logs)
    spread = math.sqrt(sum((v - mean) ** 2 for v in logs) / len(logs))
    return math.exp(mean), math.exp(spread), min(values), max(values)


# Seeds of the output gradients in `signal_variance_over_draws`, far from any model seed.
R_SEED_OFFSET = 0x5EED_0000


@dataclass
class VarianceDraws:
    """`signal_variance` repeated over independent draws of a model: per layer the geometric mean
    and the [min, max] range of each measured variance, and the same for the end-to-end ratios.
    """

    reports: list[VarianceReport]

    def _layer_stat(self, attr: str) -> list[tuple[float, float, float, float]]:
        depth = len(self.reports[0].rows)
        return [_geo([getattr(rep.rows[i], attr) for rep in self.reports]) for i in range(depth)]

    def _ratio_stat(self, attr: str) -> tuple[float, float, float, float] | None:
        values = [getattr(rep, attr) for rep in self.reports]
        return None if any(v is None for v in values) else _geo(values)

    @property
    def forward_ratio(self) -> tuple[float, float, float, float]:
        """(geometric mean, geometric std factor, min, max) of Var[y_L]/Var[y_1] over the draws."""
        return _geo([rep.forward_ratio for rep in self.reports])

    @property
    def forward_ratio_eq9(self) -> tuple[float, float, float, float]:
        return _geo([rep.forward_ratio_eq9 for rep in self.reports])

    @property
    def backward_ratio(self) -> tuple[float, float, float, float] | None:
        return self._ratio_stat("backward_ratio")

    @property
    def backward_ratio_eq13(self) -> tuple[float, float, float, float] | None:
        return self._ratio_stat("backward_ratio_eq13")

    def __str__(self) -> str:
        rows = self.reports[0].rows
        backward = rows[0].var_dx is not None
        header = ["l", "layer", "Var[y] gmean", "min", "max", "Eq.9 gmean"]
        columns = ["var_y", "var_y_eq9"]
        if backward:
            header += ["Var[Δx] gmean", "min", "max", "Eq.13 gmean"]
            columns += ["var_dx", "var_dx_eq13"]
        stats = {c: self._layer_stat(c) for c in columns}
        body = []
        for i, row in enumerate(rows):
            cells = [str(row.depth), row.name]
            for measured, law in zip(columns[::2], columns[1::2], strict=True):
                g, _, lo, hi = stats[measured][i]
                cells += [_sci(g), _sci(lo), _sci(hi), _sci(stats[law][i][0])]
            body.append(cells)
        lines = [f"{len(self.reports)} independent draws", *aligned_lines(header, body, left=2)]

        def summary(label: str, measured: tuple | None, theory: tuple | None) -> str:
            assert measured is not None and theory is not None
            g, s, lo, hi = measured
            return (
                f"{label} measured gmean {g:.3g} (×/÷ {s:.2f}, range {lo:.3g} to {hi:.3g}), "
                f"theory gmean {theory[0]:.3g}"
            )

        lines.append(summary("forward  Var[y_L]/Var[y_1]:  ", self.forward_ratio, self.forward_ratio_eq9))
        if backward:
            lines.append(
                summary("backward Var[Δx_1]/Var[Δx_L]:", self.backward_ratio, self.backward_ratio_eq13)
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def stat(t: tuple[float, float, float, float] | None) -> dict[str, float] | None:
            return None if t is None else dict(zip(("gmean", "gstd", "min", "max"), t, strict=True))

        ratios = {name: stat(getattr(self, name)) for name in RATIOS}
        return {"draws": len(self.reports), **ratios, "reports": [rep.to_dict() for rep in self.reports]}

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Like `VarianceReport.plot`, with geometric means as markers and the min-max range over
        the draws as a shaded band."""

        def series(attr: str) -> tuple[list[float], tuple[list[float], list[float]]]:
            stats = self._layer_stat(attr)
            return [s[0] for s in stats], ([s[2] for s in stats], [s[3] for s in stats])

        return _plot(path, self.reports[0].rows, series, title)


def signal_variance_over_draws(
    build_model: Callable[[int], nn.Module],
    x: Tensor,
    draws: int = 8,
    backward: bool = True,
    seed: int = 0,
) -> VarianceDraws:
    """Run `signal_variance` on ``draws`` models ``build_model(seed + i)``, each initialized from
    its seed; the geometric mean over draws is what the laws predict.

    Draw i's output gradient uses seed ``R_SEED_OFFSET + seed + i``: a generator seeded like the
    weights' would replay their numbers, correlating r with them (so ``x`` must not use those seeds).
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    reports = []
    for i in range(draws):
        model = build_model(seed + i)
        gen = torch.Generator(device=x.device).manual_seed(R_SEED_OFFSET + seed + i)
        reports.append(signal_variance(model, x, backward=backward, generator=gen))
    if len({len(rep.rows) for rep in reports}) != 1:
        raise ValueError("build_model returned models with different numbers of layer calls")
    return VarianceDraws(reports)


def _plot(
    path: str | Path,
    rows: list[VarianceRow],
    series: Callable[[str], tuple[list[Any], tuple[list[float], list[float]] | None]],
    title: str | None,
) -> Path:
    """The variance-vs-depth figure of ``rows``; ``series(attr)`` gives a column's values per layer
    and, over several draws, their (min, max) band."""
    # The object-oriented Figure API draws with Agg without touching pyplot's global backend.
    from matplotlib.figure import Figure

    panels = [("forward", "Var[y_l]", "var_y", "Eq. 9", "var_y_eq9")]
    if rows[0].var_dx is not None:
        panels.append(("backward", "Var[Δx_l]", "var_dx", "Eq. 13", "var_dx_eq13"))
    depth = [r.depth for r in rows]
    fig = Figure(figsize=(5.5 * len(panels), 4.2), layout="constrained")
    for k, (label, ylabel, measured, law, theory) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        values, band = series(measured)
        over_draws = band is not None
        ax.plot(
            depth,
            values,
            "o",
            markersize=4,
            label=f"measured {ylabel}" + (" (gmean, range)" if over_draws else ""),
        )
        if over_draws:
            ax.fill_between(depth, *band, alpha=0.2, label="range over draws")
        ax.plot(depth, series(theory)[0], "-", label=law + (" (gmean)" if over_draws else ""))
        ax.set_yscale("log")
        ax.set_xlabel("layer l (forward order)")
        ax.set_ylabel(ylabel)
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
