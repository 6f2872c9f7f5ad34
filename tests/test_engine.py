from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from rectifiers.activations import PReLU
from rectifiers.checkpoint.store import load_checkpoint
from rectifiers.config import load_config
from rectifiers.engine import NonFiniteLossError, Trainer, fit

METRIC_KEYS = {
    "epoch",
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "images_per_s",
}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_fit_writes_the_run_directory_and_lowers_the_loss(tmp_path: Path):
    out = tmp_path / "run"
    result = fit(load_config(None, tiny_overrides(out, **{"train.epochs": "4", "optim.lr": "0.02"})))
    assert result["status"] == "completed" and result["epoch"] == 4
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "curves.png", "init_report.md"):
        assert (out / name).is_file(), name
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    assert set(lines[0]) >= METRIC_KEYS
    assert all(0.0 <= line["val_top1_err"] <= 1.0 and 0.0 <= line["val_top5_err"] <= 1.0 for line in lines)
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    state = load_checkpoint(out / "last.pt")
    assert {"model", "optimizer", "epoch", "step", "config", "classes"} <= set(state)
    assert state["epoch"] == 4 and state["step"] == lines[-1]["step"]
    assert not any(k.startswith("module.") for k in state["model"])  # the unwrapped module is saved


def test_slopes_get_no_weight_decay(tmp_path: Path):
    from rectifiers import distributed

    config = load_config(None, tiny_overrides(tmp_path / "run"))
    trainer = Trainer(config, distributed.setup("cpu"))
    train_set, _ = trainer._datasets()
    trainer._build_model(train_set)
    trainer._build_optimizer()
    slopes = {id(m.weight) for m in trainer.model.modules() if isinstance(m, PReLU)}
    assert slopes
    for group in trainer.optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        if ids & slopes:
            assert group["weight_decay"] == 0.0 and ids <= slopes
        else:
            assert group["weight_decay"] == config.optim.weight_decay


@pytest.mark.parametrize("stop_at", ["epoch", "mid_epoch"])
def test_resume_matches_an_uninterrupted_run(tmp_path: Path, stop_at: str):
    extra = {"train.deterministic": "true", "train.epochs": "3"}
    fit(load_config(None, tiny_overrides(tmp_path / "full", **extra)))
    # 256 train images... the fake set's train split / 32 per batch; stop inside epoch 2
    steps = 9 if stop_at == "mid_epoch" else None
    first = dict(extra, **({"train.max_steps": str(steps)} if steps else {"train.epochs": "2"}))
    part = fit(load_config(None, tiny_overrides(tmp_path / "part", **first)))
    assert part["status"] == ("max_steps" if steps else "completed")
    fit(load_config(None, tiny_overrides(tmp_path / "part", **extra, **{"train.resume": "auto"})))
    full, resumed = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "part" / "last.pt")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    drop = ("images_per_s", "epoch_time_s", "time")
    lines = [
        [
            {k: v for k, v in json.loads(x).items() if k not in drop}
            for x in (d / "metrics.jsonl").read_text().splitlines()
        ]
        for d in (tmp_path / "full", tmp_path / "part")
    ]
    assert lines[0] == lines[1]


def test_existing_run_directory_is_not_overwritten(tmp_path: Path):
    out = tmp_path / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds checkpoints"):
        fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    assert (out / "last.pt").read_bytes() == before


def test_resume_refuses_another_model(tmp_path: Path):
    out = tmp_path / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    with pytest.raises(ValueError, match="different model.act"):
        fit(load_config(None, tiny_overrides(out, **{"train.resume": "auto", "model.act": "relu"})))


def test_diverging_lr_stops_with_epoch_and_step(tmp_path: Path):
    overrides = tiny_overrides(tmp_path / "run", **{"optim.lr": "1e8", "train.epochs": "3"})
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, step \d+.*learning rate \(1e\+08\)"):
        fit(load_config(None, overrides))


def test_nan_mid_run_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import rectifiers.engine as engine

    calls = {"n": 0}
    real = engine.F.cross_entropy

    def poisoned(logits, targets, **kwargs):
        calls["n"] += 1
        loss = real(logits, targets, **kwargs)
        return loss * float("nan") if calls["n"] == 14 else loss  # epoch 2: 8 steps + 2 val batches per epoch

    monkeypatch.setattr(engine.F, "cross_entropy", poisoned)
    out = tmp_path / "run"
    # amp off: a bf16 calibration (when none is cached) would call cross_entropy too and move the count
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step \d+.*last good checkpoint kept"):
        fit(load_config(None, tiny_overrides(out, **{"train.epochs": "3", "train.amp": "off"})))
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["imagenet_model_a"])
def test_paper_preset_takes_a_step_at_224px(tmp_path: Path, preset: str):
    overrides = {
        "data.spec": "fake:n=8,size=256,classes=1000,channels=3",
        "data.workers": "0",
        "train.batch_size": "2",
        "train.max_steps": "1",
        "train.epochs": "1",
        "train.quiet": "true",
        "train.out": str(tmp_path / "run"),
    }
    result = fit(load_config(preset, overrides))
    assert result["status"] == "max_steps" and result["step"] == 1
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["model_args"]["name"] == "model_a" and len(state["classes"]) == 1000


def test_fit_leaves_process_wide_settings_as_it_found_them(tmp_path: Path):
    import matplotlib

    backend, benchmark = matplotlib.get_backend(), torch.backends.cudnn.benchmark
    matplotlib.use("pdf")  # a user's own choice, not the Agg that curves.png is drawn with
    torch.backends.cudnn.benchmark = True
    try:
        fit(load_config(None, tiny_overrides(tmp_path / "run", **{"train.deterministic": "true"})))
        assert (tmp_path / "run" / "curves.png").is_file()
        assert matplotlib.get_backend() == "pdf"
        assert torch.are_deterministic_algorithms_enabled() is False
        assert torch.backends.cudnn.benchmark is True
    finally:
        matplotlib.use(backend)
        torch.backends.cudnn.benchmark = benchmark
        torch.use_deterministic_algorithms(False)


def test_resume_restores_the_loss_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An fp16 run resumes with the GradScaler state it saved, not at the default scale of 2**16."""
    import rectifiers.engine as engine
    from rectifiers.amp import AmpChoice
    from rectifiers.checkpoint.store import save_checkpoint

    out = tmp_path / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1", "train.amp": "off"})))
    state = load_checkpoint(out / "last.pt")
    saved = {"scale": 512.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
    state["scaler"] = {**saved, "_growth_tracker": 7}
    save_checkpoint(state, out / "last.pt")
    # fp16 without CUDA: the scaler's state is what is checked, before any step runs.
    monkeypatch.setattr(engine, "resolve_amp", lambda *_args: AmpChoice(torch.float16, "fp16 for the test"))
    monkeypatch.setattr(Trainer, "_loop", lambda self: self.scaler.state_dict())
    restored = fit(load_config(None, tiny_overrides(out, **{"train.resume": "auto"})))
    assert restored == {**saved, "_growth_tracker": 7}


def test_a_run_directory_in_use_is_refused_until_its_holder_is_gone(tmp_path: Path):
    import subprocess
    import sys

    out = tmp_path / "run"
    hold = f"import sys, time\nfrom rectifiers.run_lock import run_lock\nwith run_lock({str(out)!r}):\n"
    hold += "    print('held', flush=True)\n    time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        for resume in ("", "auto"):  # a second run, and a resume while the first trains
            overrides = tiny_overrides(out, **{"train.epochs": "1", "train.resume": resume})
            with pytest.raises(ValueError, match=rf"in use by another run \(pid {holder.pid} on host"):
                fit(load_config(None, overrides))
    finally:
        holder.kill()  # like kill -9: the lock file stays, naming a process that no longer runs
        holder.wait()
    assert (out / "run.lock").is_file()
    result = fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    assert result["status"] == "completed"
    assert not (out / "run.lock").exists()  # released when the run ends


# ---------------------------------------------------------------------- resume: what may change


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """last.pt of a one-epoch tiny run (plateau schedule), shared by the resume-policy tests."""
    out = tmp_path_factory.mktemp("saved") / "run"
    fit(load_config(None, tiny_overrides(out, **{"train.epochs": "1"})))
    return out / "last.pt"


def _restored(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, **changes: str) -> Trainer:
    """The trainer resuming `checkpoint` with `changes`, as it stands once restored (no step runs)."""
    monkeypatch.setattr(Trainer, "_loop", lambda self: self)
    values = {"train.epochs": "2", "train.resume": str(checkpoint), **changes}
    return fit(load_config(None, tiny_overrides(tmp_path / "resumed", **values)))


def test_every_config_field_has_a_resume_policy():
    from rectifiers.checkpoint.resume import OVERRIDE, OVERRIDE_KEYS, RESUME_POLICY
    from rectifiers.config import valid_keys

    assert sorted(RESUME_POLICY) == sorted(valid_keys())
    assert sorted(OVERRIDE_KEYS) == sorted(k for k, v in RESUME_POLICY.items() if v == OVERRIDE)


@pytest.mark.parametrize(
    "changes",
    [
        {"data.workers": "2"},
        {"train.keep_last": "1", "train.quiet": "false", "train.save_every": "3", "train.max_steps": "50"},
        {"train.amp": "off", "train.channels_last": "false", "train.deterministic": "true"},
        # the same images under another spec string, as a data set moved to another path would be
        {"data.spec": "fake:seed=1,channels=1,classes=4,size=16,n=256"},
    ],
    ids=["workers", "output-and-logging", "precision-and-kernels", "data-moved"],
)
def test_resume_accepts_changes_that_keep_the_maths(tmp_path, saved_run, monkeypatch, changes):
    trainer = _restored(tmp_path, saved_run, monkeypatch, **changes)
    assert (trainer.epoch, trainer.step) == (1, 8)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("model.act", "relu"),
        ("data.crop", "14"),
        ("init.mode", "fan_out"),
        ("train.batch_size", "64"),
        ("train.seed", "3"),
        ("optim.schedule", "constant"),
        ("optim.decay_bias", "false"),
    ],
)
def test_resume_refuses_changes_of_the_maths_naming_the_field(tmp_path, saved_run, monkeypatch, key, value):
    with pytest.raises(ValueError, match=rf"trained with a different {key} \("):
        _restored(tmp_path, saved_run, monkeypatch, **{key: value})


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("fake:n=288,size=16,classes=4,channels=1,seed=1", "split sizes"),
        ("fake:n=256,size=16,classes=5,channels=1,seed=1", "classes"),
    ],
)
def test_resume_refuses_other_data_by_content(tmp_path, saved_run, monkeypatch, spec, problem):
    with pytest.raises(ValueError, match=rf"trained on other data \(data.spec\): {problem}"):
        _restored(tmp_path, saved_run, monkeypatch, **{"data.spec": spec})


def test_new_optimizer_and_plateau_values_apply_on_top_of_the_saved_state(tmp_path, saved_run, monkeypatch):
    changes = {
        "optim.lr": "0.05",
        "optim.momentum": "0.8",
        "optim.weight_decay": "0.001",
        "optim.factor": "0.5",
        "optim.patience": "5",
        "optim.min_lr": "1e-05",
    }
    trainer = _restored(tmp_path, saved_run, monkeypatch, **changes)
    assert trainer.optimizer.state  # the saved momentum buffers were loaded
    for group in trainer.optimizer.param_groups:
        assert (group["lr"], group["momentum"]) == (0.05, 0.8)
        assert group["weight_decay"] == (0.0 if group["name"] == "prelu" else 0.001)
    scheduler = trainer.scheduler
    assert (scheduler.factor, scheduler.patience) == (0.5, 5)
    assert scheduler.min_lrs == [1e-05] * len(trainer.optimizer.param_groups)


def test_unchanged_values_keep_the_saved_schedule(tmp_path, saved_run, monkeypatch):
    from rectifiers.checkpoint.store import save_checkpoint

    state = load_checkpoint(saved_run)
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = 0.001  # as after a plateau switch: config.optim.lr still says 0.01
    state["scheduler"]["num_bad_epochs"] = 1
    decayed = save_checkpoint(state, tmp_path / "decayed.pt")
    trainer = _restored(tmp_path, decayed, monkeypatch)
    assert {group["lr"] for group in trainer.optimizer.param_groups} == {0.001}
    assert trainer.scheduler.num_bad_epochs == 1


def test_new_milestones_and_factor_apply_from_the_resumed_epoch(tmp_path: Path):
    out = tmp_path / "run"
    base = {"optim.schedule": "milestones", "optim.milestones": "5", "train.epochs": "1"}
    fit(load_config(None, tiny_overrides(out, **base)))
    changes = {"optim.milestones": "2,4", "optim.factor": "0.5", "train.epochs": "2", "train.resume": "auto"}
    fit(load_config(None, tiny_overrides(out, **{**base, **changes})))
    state = load_checkpoint(out / "last.pt")
    # the scheduler stepped at the end of epoch 2, a milestone now: 0.01 * 0.5
    assert {group["lr"] for group in state["optimizer"]["param_groups"]} == {0.005}
