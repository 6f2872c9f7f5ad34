"""Hostile checkpoint files are refused with a clear error and never execute code;
`--resume auto` skips a corrupt newest checkpoint; the number of epoch checkpoints kept is configurable.

The consumers are the commands a user points at a file: `rectifiers train --resume PATH` and
`rectifiers eval PATH`. A clear error is exit code 2 and one line naming the file, no traceback.
"""

from __future__ import annotations

import io
import pickle
import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import fault_kit as kit
import pytest
import torch
from PIL import Image

from rectifiers.checkpoint.store import load_checkpoint
from rectifiers.cli import build_parser, main
from rectifiers.models import create_model

REFERENCE = {"train.save_every": "1", "train.epochs": "2"}


class CodePayload:
    """Unpickling this runs `exec`: it would create `marker` if a loader ever ran pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",))


def _save(obj: object, path: Path, **kwargs) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    path.write_bytes(buffer.getvalue())


def _hostile_files(valid: Path, folder: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a phrase the refusal must contain)."""
    data = valid.read_bytes()
    state = load_checkpoint(valid)
    folder.mkdir()
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, phrase: str) -> Path:
        files[name] = (folder / f"{name}.pt", phrase)
        return files[name][0]

    add("truncated", "truncated or corrupt").write_bytes(data[: len(data) // 2])
    add("random_bytes", "truncated or corrupt").write_bytes(random.Random(0).randbytes(len(data)))
    add("empty", "empty file").write_bytes(b"")
    partial = {k: v for k, v in state.items() if k not in ("model", "model_args")}
    _save(partial, add("missing_keys", "missing keys: model, model_args"))
    # The right run's config, another model's weights (a file swapped or mislabelled).
    other = create_model(
        "net14", num_classes=10, in_chans=3, act="relu", stem="small", width=0.25, init=False
    )
    _save({**state, "model": other.state_dict()}, add("other_model", "do not fit"))
    evil = {**state, "extra": CodePayload(marker)}
    _save(evil, add("payload_zip", "refused to load"))
    _save(evil, add("payload_legacy", "refused to load"), _use_new_zipfile_serialization=False)
    # A bare pickle: protocol 2 reaches the code's GLOBAL; protocol 4 stops at its first opcode already.
    add("payload_pickle2", "refused to load").write_bytes(pickle.dumps(evil, protocol=2))
    add("payload_pickle4", "truncated or corrupt").write_bytes(pickle.dumps(evil, protocol=4))
    return files


@pytest.fixture(autouse=True)
def _restore_global_torch_state() -> Iterator[None]:
    # An in-process `train` switches on deterministic algorithms and reseeds; later tests must not see it.
    deterministic, rng = torch.are_deterministic_algorithms_enabled(), torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)


def _consumer_args(consumer: str, path: Path, tmp: Path) -> list[str]:
    """The command line with which `consumer` reads the checkpoint `path` (outputs under `tmp`)."""
    tmp.mkdir(parents=True, exist_ok=True)
    if consumer == "resume":
        return [*kit.train_args(tmp / "resumed", **REFERENCE), f"--resume={path}"]
    if consumer == "eval":
        return ["eval", str(path), "--out", str(tmp / "eval"), "--quiet"]
    if consumer == "predict":
        image = tmp / "digit.png"
        Image.new("L", (16, 16), 128).save(image)
        return ["predict", str(path), str(image)]
    return ["export", str(path), "--onnx", str(tmp / "model.onnx"), "--samples", "2"]


def _skip_without(consumer: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval`, `predict` and `export` come from other parts of the project; skip where one is absent."""
    probe = {"eval": ["x.pt"], "predict": ["x.pt", "y.png"], "export": ["x.pt", "--onnx", "x.onnx"]}
    if consumer in probe:
        try:
            build_parser().parse_args([consumer, *probe[consumer]])
        except SystemExit:
            capsys.readouterr()
            pytest.skip(f"no `rectifiers {consumer}` subcommand on this checkout")
    if consumer == "export":
        pytest.importorskip("onnxruntime")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the bare pickles
@pytest.mark.parametrize(
    "consumer", ["resume", "eval", "predict", pytest.param("export", marks=pytest.mark.slow)]
)
def test_hostile_checkpoints_are_refused_clearly_and_run_no_code(
    tmp_path: Path,
    reference_run: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    consumer: str,
):
    _skip_without(consumer, capsys)
    valid = reference_run(**REFERENCE) / "last.pt"
    marker = tmp_path / "code-was-executed"
    files = _hostile_files(valid, tmp_path / "hostile", marker)
    # Control: the same command accepts the genuine file, so the refusals below are about the files.
    assert main(_consumer_args(consumer, valid, tmp_path / "ok")) == 0, capsys.readouterr().err
    capsys.readouterr()
    for name, (path, phrase) in files.items():
        code = main(_consumer_args(consumer, path, tmp_path / name))
        err = capsys.readouterr().err
        kit.TALLY["faults injected"] += 1
        assert code == 2, f"{name}: exit {code}\n{err}"
        assert str(path) in err and phrase in err, f"{name}: unclear error:\n{err}"
        assert len(err.strip().splitlines()) == 1, f"{name}: more than one line:\n{err}"
        assert not marker.exists(), f"{name}: the pickled code ran"


def test_code_payload_in_a_real_process_is_refused(tmp_path: Path, reference_run: Callable[..., Path]):
    marker = tmp_path / "code-was-executed"
    evil = tmp_path / "evil.pt"
    _save({**load_checkpoint(reference_run(**REFERENCE) / "last.pt"), "x": CodePayload(marker)}, evil)
    done = kit.cli([*kit.train_args(tmp_path / "run", **REFERENCE), f"--resume={evil}"], tmp_path)
    kit.TALLY["faults injected"] += 1
    assert done.returncode == 2, done.stderr
    assert f"{evil}: refused to load" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_resume_auto_skips_corrupt_newest_and_keeps_last_k(
    tmp_path: Path, reference_run: Callable[..., Path]
):
    reference = reference_run(**REFERENCE)
    run = tmp_path / "run"
    shutil.copytree(reference, run)  # copies: last.pt is no longer a hard link of the epoch-2 file
    newest = run / "checkpoints" / "epoch_0002_step_000000016.pt"
    (run / "last.pt").write_bytes(random.Random(1).randbytes(4096))
    newest.write_bytes(newest.read_bytes()[:1000])
    kit.TALLY["faults injected"] += 2
    done = kit.cli(
        kit.train_args(
            run, **REFERENCE, **{"train.resume": "auto", "train.keep_last": "1", "train.quiet": "false"}
        ),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("skipping unusable checkpoint") == 2, done.stderr
    assert "resuming from" in done.stderr and "epoch_0001_step_000000008.pt" in done.stderr, done.stderr
    kit.assert_same_run(run, reference)  # epoch 2 ran again, to the same bits; its metrics line once
    kit.TALLY["runs recovered"] += 1
    # keep_last=1 here against the default 3 of the reference run, which kept both epochs
    assert len(list((reference / "checkpoints").glob("*.pt"))) == 2
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == [newest.name]
