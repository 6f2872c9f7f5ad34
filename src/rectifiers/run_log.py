"""What a training run writes besides its checkpoints, and what it shows on the console.

Files, in the run directory (`train.out`), written by the main process only:
    run.txt          the header of each start of the run: model, data, device, precision, threads, kernel
    config.json      the RunConfig, and under "resolved" what this start made of "auto" settings
                     (the precision `train.amp = auto` chose, and why)
    init_report.md   what `initialize` did to each layer
    metrics.jsonl    one JSON line per epoch; on a resume, cut back to the epochs the checkpoint holds
    curves.png       loss and error against epoch, redrawn after every epoch
    tensorboard/     the same scalars as TensorBoard events, when `train.tensorboard` is on

Console (main process, unless `train.quiet`): messages and one line per epoch on stderr, and a tqdm bar
over the epoch's batches when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rectifiers import prelu_kernel
from rectifiers.activations import PReLU
from rectifiers.amp import AmpChoice
from rectifiers.atomic_file import replacing
from rectifiers.config import RunConfig
from rectifiers.data import ImageDataset, InMemoryDataset
from rectifiers.metrics import top5_is_informative
from rectifiers.models import Net
from rectifiers.plots import plot_curves, read_jsonl

RESOLVED = "resolved"  # config.json's section that is not part of the RunConfig
_PRECISION = "precision:"  # the run.txt header line that names the precision trained in


def prelu_kernel_status(model: nn.Module, device: torch.device, say: Callable[[str], None]) -> str:
    """Load the fused PReLU kernel where `model` will use it, announcing a first-use build through
    `say` (a silent pause of ~20 s otherwise); returns what the run header says about it."""
    if not any(isinstance(m, PReLU) for m in model.modules()):
        return "not used (the model has no PReLU)"
    if device.type != "cpu":
        return f"not used on {device.type} (ATen's PReLU)"
    if prelu_kernel.needs_build():
        say("building the fused PReLU kernel (first use, ~20 s)")
    if prelu_kernel.load() is None:
        return "unavailable (RECTIFIERS_NO_KERNEL or no C++ compiler): ATen's PReLU, same results"
    return "ready"


def position(epochs_done: int, batch: int, step: int) -> str:
    """Where a run (or its checkpoint) stands, with epochs numbered from 1 as on the console.

    `epochs_done` whole epochs and `batch` batches of the next: "at epoch 2, batch 5, step 36" inside
    an epoch, "after epoch 1, step 31" at its end.
    """
    if batch:
        return f"at epoch {epochs_done + 1}, batch {batch}, step {step}"
    return f"after epoch {epochs_done}, step {step}"


class RunLog:
    """The log files and console output of one run; on any rank but the main one it does nothing."""

    def __init__(self, config: RunConfig, is_main: bool) -> None:
        t = config.train
        self.run_dir = Path(t.out)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.is_main = is_main
        self.quiet = t.quiet
        self.epochs = t.epochs
        self.use_tensorboard = t.tensorboard
        self.title = f"{config.model.name} ({config.model.act}) on {config.data.spec}"
        self.num_classes = 0  # known once the data is open (`header`); top-5 is shown above 5 classes

    def say(self, text: str) -> None:
        """Print `text` on stderr (main process, unless quiet)."""
        if self.is_main and not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def progress(self, total: int, initial: int, epoch: int) -> Any:
        """A tqdm bar over the `total` batches of epoch `epoch` (1-based), starting at `initial`.

        None where no bar is wanted: other ranks, quiet runs, and a stderr that is not a terminal
        (a bar redrawn into a log file is noise).
        """
        if not self.is_main or self.quiet or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
        )

    def header(
        self,
        config: RunConfig,
        model: nn.Module,
        data: tuple[ImageDataset, ImageDataset],
        device: torch.device,
        precision: AmpChoice,
        kernel: str,
    ) -> None:
        """Say what this run trains, on what, and how; append the same lines to run.txt.

        `precision` is the autocast dtype and why it was chosen; `kernel` is what `prelu_kernel_status`
        returned.
        """
        train_set, val_set = data
        self.num_classes = len(train_set.classes)
        if not self.is_main:
            return
        d, m = config.data, config.model
        params = sum(p.numel() for p in model.parameters())
        registry = isinstance(model, Net)  # else a module of the user's, which config.model does not describe
        what = f"{m.name} ({m.act}, {m.stem} stem, width {m.width:g})" if registry else type(model).__name__
        names = f" ({', '.join(train_set.classes)})" if self.num_classes <= 10 else ""
        size = (
            "{}x{} px".format(*train_set.image_size)
            if isinstance(train_set, InMemoryDataset)
            else "mixed sizes, decoded from files"
        )
        lines = [
            f"model: {what}, {params:,} parameters",
            f"data: {train_set.source}: {len(train_set):,} train / {len(val_set):,} val images, "
            f"{self.num_classes} classes{names}, {train_set.num_channels} channel(s), {size}",
            f"input: crops of {d.crop} px from shorter side {d.scale_min}..{d.scale_max}, flips {d.flip:g}, "
            f"colour {d.pca_std:g}; val: shorter side {d.eval_resize}, center crop {d.crop}",
            f"device: {device}, {torch.get_num_threads()} threads; batch {config.train.batch_size}, "
            f"lr {config.optim.lr:g}, {config.train.epochs} epochs",
            f"{_PRECISION} {precision.name} ({precision.reason})",
            f"fused PReLU kernel: {kernel}",
            f"run directory: {self.run_dir}",
        ]
        for line in lines:
            self.say(line)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        with open(self.run_dir / "run.txt", "a") as handle:
            handle.write(f"started {started}\n" + "".join(f"  {line}\n" for line in lines))

    @staticmethod
    def precisions(run_dir: str | Path) -> list[str]:
        """The precision ('bfloat16', 'float32', ...) each start of the run in `run_dir` trained in, in
        order, from the headers in its run.txt (written by `header`)."""
        path = Path(run_dir) / "run.txt"
        lines = path.read_text().splitlines() if path.is_file() else []
        return [line.split()[1] for line in lines if line.startswith(f"  {_PRECISION}")]

    def write_run_files(self, config: dict[str, Any], resolved: dict[str, str], init_report: str) -> None:
        """Create the run directory and write config.json (`config`, plus what this start made of its
        "auto" settings as section `RESOLVED`) and init_report.md (markdown) into it."""
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({**config, RESOLVED: resolved}, indent=2)
        (self.run_dir / "config.json").write_text(text + "\n")
        (self.run_dir / "init_report.md").write_text(init_report + "\n")

    def trim_metrics(self, epoch: int) -> None:
        """Keep only the metrics lines of the epochs the starting state has completed (1..`epoch`).

        A crash before the epoch's checkpoint, or a resume from an older one, leaves lines of epochs
        about to run again, and a crash inside a write leaves a torn last line; both are dropped.
        """
        path = self.metrics_path
        if not self.is_main or not path.exists():
            return
        text = path.read_text()
        records = [r for r in read_jsonl(path) if int(r.get("epoch", 0)) <= epoch]
        kept = "".join(json.dumps(r) + "\n" for r in records)
        if kept == text:
            return
        with replacing(path) as tmp:
            tmp.write_text(kept)
        dropped = len(text.splitlines()) - len(records)
        self.say(f"metrics.jsonl: dropped {dropped} line(s) after epoch {epoch}, the resumed state")

    @contextlib.contextmanager
    def tensorboard(self) -> Iterator[Any]:
        """A TensorBoard `SummaryWriter` on `tensorboard/` for the block, closed after it.

        Yields None where `train.tensorboard` is off and on ranks other than the main one. Raises
        ValueError when it is on but the tensorboard package is missing.
        """
        if not (self.use_tensorboard and self.is_main):
            yield None
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ValueError(
                "train.tensorboard needs the tensorboard package: pip install 'rectifiers[tensorboard]'"
            ) from err
        writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        try:
            yield writer
        finally:
            writer.close()

    def log_epoch(self, metrics: dict[str, Any], writer: Any = None) -> None:
        """Record one finished epoch: a metrics.jsonl line, curves.png, TensorBoard scalars, a console line.

        `metrics` holds "epoch", "step", "lr", "images_per_s" and the train_/val_ losses and errors;
        `writer` is what `tensorboard()` yielded.
        """
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(metrics) + "\n")
        plot_curves(self.metrics_path, self.run_dir / "curves.png", title=self.title)
        epoch = metrics["epoch"]
        if writer is not None:
            for key, value in metrics.items():
                if key not in ("epoch", "time", "partial") and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, epoch)
        part = f" (batch {metrics['batch']} of {metrics['batches']})" if metrics.get("partial") else ""
        # Top-5 of five classes or fewer is always 0: noise on the console (metrics.jsonl keeps it).
        top5 = (
            f"top-5 err {100 * metrics['val_top5_err']:.2f}%  "
            if top5_is_informative(self.num_classes)
            else ""
        )
        self.say(
            f"epoch {epoch}/{self.epochs}{part}  step {metrics['step']}  lr {metrics['lr']:g}  "
            f"train loss {metrics['train_loss']:.4f}  val loss {metrics['val_loss']:.4f}  "
            f"val top-1 err {100 * metrics['val_top1_err']:.2f}%  {top5}"
            f"{metrics['images_per_s']:.0f} img/s"
        )
