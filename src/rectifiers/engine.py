"""`fit(config)`: the paper's training recipe, one loop for one process and for torchrun/DDP.

Recipe (paper Sec. 3): SGD with momentum 0.9, weight decay 5e-4 on weights but never on PReLU
slopes (Sec. 2.1), lr 1e-2 divided by 10 when the validation error plateaus, mini-batch 128,
dropout 0.5 on fc1/fc2, He initialization in its backward form (Eq. 14).

The main process writes into `train.out`: the run files of `run_log` (run.txt, config.json,
init_report.md, metrics.jsonl, curves.png), test.json (with data.val_fraction: the final model on the
spec's own val split), and the checkpoints of `checkpoint.resume` (checkpoints/, last.pt, best.pt).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler

from rectifiers import distributed
from rectifiers.activations import PReLU
from rectifiers.amp import AmpChoice, model_step_probe, resolve_amp
from rectifiers.atomic_file import remove_stale_temp_files
from rectifiers.checkpoint.resume import (
    agree_on_resume_state,
    apply_overrides,
    check_same_data,
    resume_overrides,
    save_run_checkpoint,
)
from rectifiers.checkpoint.store import FORMAT, CheckpointError, resume_candidates
from rectifiers.config import RunConfig
from rectifiers.data import ImageDataset, open_dataset
from rectifiers.holdout import hold_out, val_is_test_split
from rectifiers.loader import BatchLoader
from rectifiers.machine import versions
from rectifiers.metrics import error_from_counts, topk_correct
from rectifiers.models import create_model
from rectifiers.optim import param_groups
from rectifiers.rng_state import get_rng_state, set_rng_state
from rectifiers.run_lock import run_lock
from rectifiers.run_log import RunLog, position, prelu_kernel_status
from rectifiers.runtime import torch_flags_kept
from rectifiers.sizes_from_data import fill_from_data
from rectifiers.stop_signals import StopSignals, TrainingStopped
from rectifiers.train_step import READ_EVERY, StepTally, TrainStep
from rectifiers.transforms import EvalTransform, Normalize, TrainTransform

__all__ = ["NonFiniteLossError", "Trainer", "fit", "prelu_slopes"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


def fit(
    config: RunConfig,
    model: nn.Module | None = None,
    train_set: ImageDataset | None = None,
    val_set: ImageDataset | None = None,
) -> dict[str, Any]:
    """Train as `config` says; returns the final metrics, the run directory and a status.

    `model`: a module of your own to train instead of `config.model`; it is initialized by
    `config.init` like a registry model and trained in place. Checkpoints hold its weights and class
    name, not its code: a resume needs the same kind of model passed again, and `load_model` refuses
    such a checkpoint (build the model, then `load_state_dict(load_checkpoint(path)["model"])`).
    `train_set`, `val_set`: data sets (`rectifiers.data.ImageDataset`, e.g. `InMemoryDataset`) to use
    instead of opening `config.data.spec`; both or neither.

    status is "completed", "max_steps" (stopped at train.max_steps) or "interrupted" (SIGINT/SIGTERM;
    a checkpoint was saved first). With `data.val_fraction`, a completed run also returns the final
    model's test_loss, test_top1_err, test_top5_err and test_images on the spec's own val split.
    Raises NonFiniteLossError on a NaN/inf loss, keeping the last good checkpoint, and
    RunDirectoryBusyError (a ValueError) when another run holds `train.out`. torch's deterministic
    and cuDNN flags are as the caller left them when it returns.
    """
    if (train_set is None) != (val_set is None):
        raise ValueError("fit: pass both train_set and val_set, or neither (config.data.spec is then opened)")
    for name, given in (("train_set", train_set), ("val_set", val_set)):
        if given is not None and not isinstance(given, ImageDataset):
            raise TypeError(f"fit: {name} must be a rectifiers.data.ImageDataset, got {type(given).__name__}")
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"fit: model must be an nn.Module, got {type(model).__name__}")
    config.validate()
    ctx = distributed.setup(config.train.device)
    # Only the main process writes, so it alone holds the run directory's lock (run_lock.py).
    lock = run_lock(config.train.out) if ctx.is_main else contextlib.nullcontext()
    try:
        given = None if train_set is None or val_set is None else (train_set, val_set)
        with lock, torch_flags_kept():  # a deterministic run leaves the caller's torch flags as they were
            return Trainer(config, ctx, model=model, datasets=given).run()
    finally:
        distributed.teardown()


def prelu_slopes(model: nn.Module) -> dict[str, float]:
    """The mean slope of every PReLU in `model`, keyed by the module's name (Table 1's numbers)."""
    return {
        name: float(module.weight.detach().float().mean())
        for name, module in model.named_modules()
        if isinstance(module, PReLU)
    }


class Trainer:
    """The state of one run. `run()` is the whole job; the methods below are its steps."""

    def __init__(
        self,
        config: RunConfig,
        ctx: distributed.DistContext,
        model: nn.Module | None = None,
        datasets: tuple[ImageDataset, ImageDataset] | None = None,
    ) -> None:
        # Sizes and batch left at 0 come from the training images.
        self.config = config = fill_from_data(config, datasets[0] if datasets else None)
        self.ctx = ctx
        self.given_model = model  # a user's module in place of config.model (see `fit`)
        self.given_datasets = datasets  # (train, val) in place of config.data.spec
        self.run_dir = Path(config.train.out)
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches of the current epoch already done (mid-epoch checkpoints)
        self.step = 0  # optimizer steps
        self.best_err = math.inf
        self.stop_signals = StopSignals()  # .signum: the SIGINT/SIGTERM that asked the run to stop
        self.resume_path: Path | None = None  # the checkpoint this run continues
        self.epoch_sums = torch.zeros(3, dtype=torch.float64)
        self.tally = StepTally(ctx.device)  # the steps not yet read back to the host (train_step)
        self.run_log = RunLog(config, ctx.is_main)  # config.json, metrics.jsonl, curves, console

    # ------------------------------------------------------------------ setup

    def run(self) -> dict[str, Any]:
        cfg, ctx = self.config, self.ctx
        self.resume_path, resume_state = agree_on_resume_state(cfg, self.run_log.say, ctx) or (None, None)
        self._seed(cfg.train.seed)
        train_set, val_set = self._datasets()
        # Rank 0 computes the statistics (a file set decodes up to 10,000 images for them) and the
        # others take its result: ranks on other nodes share no cache folder with it.
        normalize = Normalize.from_state_dict(
            resume_state["normalization"]
            if resume_state
            else distributed.broadcast_object(
                Normalize.from_dataset(
                    train_set,
                    mode=cfg.data.mean,
                    divide_std=cfg.data.divide_std,
                    size=cfg.data.crop,
                    scale=1.0 if cfg.data.raw_pixels else 1 / 255,
                ).state_dict()
                if ctx.is_main
                else None
            )
        )
        self.normalization = normalize.state_dict()
        self._build_model(train_set)
        kernel = prelu_kernel_status(self.model, ctx.device, self.run_log.say)
        self._build_optimizer()
        self._build_loaders(train_set, val_set, normalize)
        self.amp_choice = self._resolve_amp()  # .reason: why this precision (the run header)
        self.amp = self.amp_choice.dtype
        # Built before the restore, which gives an fp16 run back its loss scale.
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp is torch.float16)
        if resume_state is not None:
            self._restore(resume_state)
            if self.epoch >= cfg.train.epochs:
                self.run_log.say(
                    f"already complete: {self.epoch} of {cfg.train.epochs} epochs done; nothing to train "
                    "(raise --epochs to train further)"
                )
        else:
            self._seed_rank(cfg.train.seed)
        self.train_model = self._wrap(self.model)
        self.run_log.header(cfg, self.model, (train_set, val_set), ctx.device, self.amp_choice, kernel)
        if ctx.is_main:
            self._write_run_files()
        with self.stop_signals.installed():
            return self._loop()

    def _seed(self, seed: int) -> None:
        # Same seed on every rank while building the model: identical initial weights everywhere.
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if self.config.train.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

    def _seed_rank(self, seed: int) -> None:
        # Dropout differs per rank (each sees other images), reproducibly.
        torch.manual_seed(seed + 1_000_003 * (self.ctx.rank + 1))

    def _datasets(self) -> tuple[ImageDataset, ImageDataset]:
        spec = self.config.data.spec
        if self.given_datasets is not None:
            train_set, val_set = self.given_datasets
            spec = "the data sets passed to fit"
        else:
            train_set, val_set = open_dataset(spec, "train"), open_dataset(spec, "val")
        if list(train_set.classes) != list(val_set.classes):
            raise ValueError(f"{spec}: the train and val splits have different classes")
        self.classes = list(train_set.classes)
        self.test_set: ImageDataset | None = None  # the spec's own val split, once val is held out
        if self.config.data.val_fraction:
            self.test_set = val_set
            train_set, val_set = hold_out(train_set, self.config.data.val_fraction)
        elif self.given_datasets is None and val_is_test_split(spec):
            warnings.warn(
                f"{spec}: its val split is the test split, so the lr schedule and best.pt are chosen on "
                "the test set; set data.val_fraction (e.g. 0.1) to hold out a validation split from train",
                stacklevel=2,
            )
        self.data_sizes = {"train": len(train_set), "val": len(val_set)}  # checked on resume
        skipped = [*train_set.skipped, *val_set.skipped]
        self.skipped_files = len(skipped)
        if skipped:
            self.run_log.say(f"{len(skipped)} undecodable file(s) skipped (first: {skipped[0]})")
        return train_set, val_set

    def _build_model(self, train_set: ImageDataset) -> None:
        cfg = self.config
        self.in_chans = train_set.num_channels
        if self.given_model is not None:
            # No build arguments to store: a checkpoint names the class, and a resume gets it again.
            model = self.given_model
            self.model_args = {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
        else:
            self.model_args = cfg.model.create_args(len(self.classes), self.in_chans)
            model = create_model(**self.model_args, init=False)
        self.init_report = cfg.init.apply(model)
        fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.model = model.to(self.ctx.device, memory_format=fmt)
        self.memory_format = fmt

    def _build_optimizer(self) -> None:
        o = self.config.optim
        groups = param_groups(self.model, o.weight_decay, no_decay_bias=not o.decay_bias)
        self.optimizer = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
        if o.schedule == "plateau":
            self.scheduler: Any = lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=o.factor, patience=o.patience, min_lr=o.min_lr
            )
        elif o.schedule == "milestones":
            self.scheduler = lr_scheduler.MultiStepLR(self.optimizer, o.milestones, gamma=o.factor)
        else:
            self.scheduler = None

    def _build_loaders(self, train_set: ImageDataset, val_set: ImageDataset, normalize: Normalize) -> None:
        d, t, ctx = self.config.data, self.config.train, self.ctx
        if t.batch_size % ctx.world_size:
            raise ValueError(
                f"train.batch_size ({t.batch_size}) must be divisible by the number of "
                f"processes ({ctx.world_size}); the paper keeps the global batch fixed"
            )
        per_rank = t.batch_size // ctx.world_size
        if per_rank > len(train_set) // ctx.world_size:  # training drops the last, partial batch
            raise ValueError(
                f"{d.spec}: {len(train_set)} training images make no full batch of train.batch_size "
                f"({t.batch_size}): lower it (--batch-size {max(1, len(train_set) // 4)}), or train with "
                "--config images, which takes the batch size from the data"
            )
        train_tf = TrainTransform(
            d.crop, (d.scale_min, d.scale_max), flip=d.flip, pca_std=d.pca_std, normalize=normalize
        )
        eval_tf = EvalTransform(d.eval_resize, d.crop, normalize=normalize)
        common = {
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "seed": t.seed,
            "num_workers": d.workers,
            "device": ctx.device,
            "channels_last": t.channels_last,
        }
        self.train_loader = BatchLoader(train_set, per_rank, train=True, transform=train_tf, **common)
        evaluation = {"train": False, "transform": eval_tf, **common}
        self.val_loader = BatchLoader(val_set, per_rank, **evaluation)
        self.test_loader = (
            None if self.test_set is None else BatchLoader(self.test_set, per_rank, **evaluation)
        )

    def _restore(self, state: dict[str, Any]) -> None:
        check_same_data(state, self.resume_path, self.classes, self.data_sizes, self.in_chans)
        # The values this run's config gives, kept for the optimizer/schedule fields it changes.
        overrides = list(resume_overrides(self.config, state))
        fresh_groups = [dict(group) for group in self.optimizer.param_groups]
        fresh_scheduler = self.scheduler.state_dict() if self.scheduler is not None else None
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):  # empty when saved without fp16; a disabled scaler ignores it
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            # A file whose config matches this run but whose tensors belong to another model.
            detail = " ".join(line.strip() for line in str(err).splitlines()[:2])
            raise CheckpointError(
                f"{self.resume_path}: its weights do not fit model {self.config.model.name}: {detail}"
            ) from None
        apply_overrides(overrides, self.optimizer, self.scheduler, fresh_groups, fresh_scheduler)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.batch = int(state.get("batch", 0))
        self.best_err = float(state.get("best_val_top1_err", math.inf))
        partial = state.get("epoch_sums") or []
        if self.batch and len(partial) == self.ctx.world_size:
            self.epoch_sums = partial[self.ctx.rank].to(torch.float64)
        rng = state.get("rng") or []
        if len(rng) == self.ctx.world_size:
            set_rng_state(rng[self.ctx.rank])
        else:  # another world size: fresh per-rank streams, still seeded
            self._seed_rank(self.config.train.seed + self.step)

    def _wrap(self, model: nn.Module) -> nn.Module:
        wrapped: nn.Module = model
        if self.ctx.distributed:
            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if self.config.train.compile:
            wrapped = torch.compile(wrapped)  # type: ignore[assignment]
        return wrapped

    def _resolve_amp(self) -> AmpChoice:
        """`train.amp` for this run. "auto" on a CPU without AMX times this model's step, on rank 0
        only: the ranks share the machine's cores and must train in the same precision."""
        cfg, ctx = self.config, self.ctx
        per_rank = cfg.train.batch_size // ctx.world_size
        shape = (per_rank, self.in_chans, cfg.data.crop, cfg.data.crop)
        probe = model_step_probe(self.model, self.model_args, shape, len(self.classes), self.memory_format)
        choice = None
        if ctx.is_main:
            choice = resolve_amp(cfg.train.amp, ctx.device, cfg.train.deterministic, probe)
        return distributed.broadcast_object(choice) if ctx.distributed else choice

    def _write_run_files(self) -> None:
        resolved = {"precision": self.amp_choice.name, "precision_reason": self.amp_choice.reason}
        self.run_log.write_run_files(self.config.to_dict(), resolved, self.init_report.to_markdown())
        for folder in (self.run_dir, self.run_dir / "checkpoints"):
            remove_stale_temp_files(folder)
        self.run_log.trim_metrics(self.epoch)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> dict[str, Any]:
        cfg = self.config.train
        status = "completed"
        metrics: dict[str, Any] = {}
        with self.run_log.tensorboard() as writer:
            while self.epoch < cfg.epochs:
                try:
                    train_metrics = self._train_epoch()
                except TrainingStopped as stop:
                    self._save(mid_epoch=True)
                    return self._stopped(stop, metrics)
                if self.batch < len(self.train_loader):  # train.max_steps reached mid-epoch
                    self._save(mid_epoch=True)
                    # Marked partial, under the running epoch's number: a resume from the saved state
                    # (that epoch not done) drops the line again.
                    metrics = self._epoch_metrics(
                        train_metrics, partial=True, batch=self.batch, batches=len(self.train_loader)
                    )
                    self._log(metrics, writer)
                    return self._result("max_steps", metrics)
                metrics = self._epoch_metrics(train_metrics)
                self.epoch += 1
                self.batch = 0
                slopes = prelu_slopes(self.model)
                if slopes:  # how the learned slopes move, epoch by epoch
                    metrics["prelu_slopes"] = slopes
                improved = metrics["val_top1_err"] < self.best_err
                if improved:
                    self.best_err = metrics["val_top1_err"]
                if isinstance(self.scheduler, lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(metrics["val_top1_err"])
                elif self.scheduler is not None:
                    self.scheduler.step()
                self._log(metrics, writer)
                self._save(best=improved)
                # A signal during the epoch's last batch or its validation stops here, after the
                # epoch's checkpoint: a resume never starts with an epoch that has no batches left.
                if self.epoch < cfg.epochs and self._stop_requested():
                    return self._stopped(TrainingStopped(self.stop_signals.signum or signal.SIGTERM), metrics)
                if cfg.max_steps and self.step >= cfg.max_steps:
                    status = "max_steps"
                    break
        result = self._result(status, metrics)
        if status == "completed" and self.test_loader is not None:
            result.update(self._test())
        return result

    def _test(self) -> dict[str, float]:
        """The final model on the test split, once, after the last epoch (written to test.json)."""
        found = {
            "test_" + key.removeprefix("val_"): value
            for key, value in self._validate(self.test_loader).items()
        }
        if self.ctx.is_main:
            (self.run_dir / "test.json").write_text(json.dumps({"epoch": self.epoch, **found}) + "\n")
        return found

    def _stopped(self, stop: TrainingStopped, metrics: dict[str, Any]) -> dict[str, Any]:
        where = position(self.epoch, self.batch, self.step)
        self.run_log.say(f"stopped by {stop}: checkpoint saved {where}; continue with --resume auto")
        return self._result("interrupted", metrics, signum=stop.signum)

    def _epoch_metrics(self, train_metrics: dict[str, float], **partial: Any) -> dict[str, Any]:
        """The running epoch's metrics line, validating the model now; ``partial``: the marks of an
        epoch cut short (partial, batch, batches)."""
        return {
            "epoch": self.epoch + 1,
            **partial,
            "step": self.step,
            "lr": self._lr(),
            **train_metrics,
            **self._validate(),
            "time": time.time(),
        }

    def _train_epoch(self) -> dict[str, float]:
        cfg, ctx = self.config.train, self.ctx
        self.train_model.train()
        # A mid-epoch resume starts at the saved batch with that batch's own shuffle and augmentation.
        self.train_loader.set_epoch(self.epoch, start_batch=self.batch)
        if self.batch == 0:  # a fresh epoch; a mid-epoch resume keeps the restored partial sums
            self.epoch_sums = torch.zeros(3, dtype=torch.float64)  # loss * n, top-1 correct, n
        total = len(self.train_loader)
        bar = self.run_log.progress(total, initial=self.batch, epoch=self.epoch + 1)
        step = TrainStep(self.train_model, self.optimizer, self.scaler, self.amp, self.tally, ctx.device.type)
        started, seen = time.perf_counter(), 0
        for index, (images, targets) in enumerate(self.train_loader, start=self.batch):
            step(images, targets)
            self.step += 1
            self.batch = index + 1
            seen += targets.numel()
            save_now = bool(cfg.save_every) and self.step % cfg.save_every == 0 and self.batch < total
            at_max_steps = bool(cfg.max_steps) and self.step >= cfg.max_steps and self.batch < total
            # Read before a save too: a checkpoint never holds a step whose loss was not checked.
            # One process reads its own stop flag for free, every step; ranks agree on it at reads.
            stop_now = not ctx.distributed and self.batch < total and self._stop_requested()
            if save_now or at_max_steps or stop_now or len(self.tally) >= READ_EVERY:
                self._read_tally(bar, started, seen)
            if bar is not None:
                bar.update(1)
            if save_now:
                self._save(mid_epoch=True)
            if at_max_steps:
                break
        if len(self.tally):
            self._read_tally(bar, started, seen)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - started
        sums = distributed.all_reduce_sum(self.epoch_sums.clone().to(ctx.device)).cpu()
        return {
            "train_loss": float(sums[0] / sums[2]),
            "train_top1_err": error_from_counts(float(sums[1]), float(sums[2])),
            "images_per_s": seen * ctx.world_size / max(elapsed, 1e-9),
            "epoch_time_s": elapsed,
        }

    def _stop_requested(self) -> bool:
        requested = self.stop_signals.signum is not None
        return distributed.any_rank(requested, self.ctx.device) if self.ctx.distributed else requested

    def _read_tally(self, bar: Any, started: float, seen: int) -> None:
        """Check the steps since the last read and add their sums to the epoch's: raise
        NonFiniteLossError naming the first step whose loss was not finite on any rank, or
        TrainingStopped when a rank was asked to stop (SIGINT/SIGTERM)."""
        unchecked = len(self.tally)
        asked = self.stop_signals.signum is not None if self.ctx.distributed else self._stop_requested()
        reading = self.tally.read(asked, distributed.all_reduce_sum)
        if reading.first_non_finite is not None:
            step = self.step - unchecked + 1 + reading.first_non_finite
            kept = resume_candidates(self.run_dir)
            raise NonFiniteLossError(
                f"non-finite loss ({reading.value}) at epoch {self.epoch + 1}, step {step}: "
                f"the learning rate ({self._lr():g}) may be too high or the data broken; "
                + (f"last good checkpoint kept: {kept[0]}" if kept else "no checkpoint had been written yet")
            )
        self.epoch_sums += reading.sums
        if bar is not None:
            sums = self.epoch_sums
            rate = seen * self.ctx.world_size / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(
                loss=f"{sums[0] / sums[2]:.3f}",
                acc=f"{sums[1] / sums[2]:.3f}",
                img_s=f"{rate:.0f}",
                refresh=False,
            )
        if reading.stop and self.batch < len(self.train_loader):
            # Under torchrun the signal may have reached another rank only. At the epoch's last batch
            # `_loop` stops after the epoch's checkpoint instead.
            raise TrainingStopped(self.stop_signals.signum or signal.SIGTERM)

    @torch.no_grad()
    def _validate(self, loader: Any = None) -> dict[str, float]:
        """Loss and top-1/top-5 error on the validation split (or `loader`'s); each image counted once
        across ranks."""
        self.model.eval()
        sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 correct, top-5 correct, n
        for images, targets in loader or self.val_loader:
            with torch.autocast(
                self.ctx.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                logits = self.model(images).float()
            loss = F.cross_entropy(logits, targets, reduction="sum")
            sums += torch.cat(
                [
                    loss.double().cpu()[None],
                    topk_correct(logits, targets, (1, 5)).cpu(),
                    torch.tensor([targets.numel()], dtype=torch.float64),
                ]
            )
        sums = distributed.all_reduce_sum(sums.to(self.ctx.device)).cpu()
        n = float(sums[3])
        return {
            "val_loss": float(sums[0]) / n if n else float("nan"),
            "val_top1_err": error_from_counts(float(sums[1]), n),
            "val_top5_err": error_from_counts(float(sums[2]), n),
            "val_images": int(n),
        }

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ files

    def _state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "world_size": self.ctx.world_size,  # a mid-epoch state continues with this many processes
            "config": self.config.to_dict(),
            "model_args": self.model_args,
            "classes": self.classes,
            "data_sizes": self.data_sizes,
            "normalization": self.normalization,
            "best_val_top1_err": self.best_err,
            # per-rank partial train metrics, for a mid-epoch save
            "epoch_sums": distributed.all_gather_objects(self.epoch_sums.clone()),
            "rng": distributed.all_gather_objects(get_rng_state()),
            "versions": versions(),
        }

    def _save(self, best: bool = False, mid_epoch: bool = False) -> None:
        state = self._state()  # every rank takes part in gathering the RNG states
        if self.ctx.is_main:
            save_run_checkpoint(
                state, self.run_dir, best=best, mid_epoch=mid_epoch, keep_last=self.config.train.keep_last
            )

    def _log(self, metrics: dict[str, Any], writer: Any) -> None:
        # A method of its own so that a subclass can hook each finished epoch (benchmarks/soak.py).
        self.run_log.log_epoch(metrics, writer)

    def _result(self, status: str, metrics: dict[str, Any], signum: int | None = None) -> dict[str, Any]:
        return {
            "status": status,
            "run_dir": str(self.run_dir),
            "epoch": self.epoch,
            "step": self.step,
            "best_val_top1_err": self.best_err,
            "metrics": metrics,
            "signal": signum,
            "skipped_files": self.skipped_files,
        }
