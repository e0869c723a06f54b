"""First contact: bad input gives one `error:` line and exit status 2, never a traceback."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from data_modules.errors import DiskFullError, UserInputError, run_main
from data_modules.io.atomic import atomic_path
from lightning_dl.fit import main
from lightning_dl.predict import submission
from lightning_dl.training.run.checkpoint_io import AtomicCheckpointIO
from tests.helpers.datafiles import write_cifar10, write_idx, write_mnist
from tests.helpers.tiny_runs import QUICK, ROOT, tiny_args
from tests.helpers.wsj_corpus import write_corpus

MNIST = str(ROOT / "configs" / "mnist_mlp.yaml")
CIFAR = str(ROOT / "configs" / "cifar10_mlp.yaml")
WSJ = str(ROOT / "configs" / "wsj_mlp.yaml")
_spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
predict_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(predict_script)
QUIET = ("--trainer.logger", "false", "--trainer.enable_progress_bar", "false")


def _exit(capsys, args: list[str]) -> tuple[int, str]:
    """Run fit as the command line does (run_main); return (exit status, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: main(args))
    return stopped.value.code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_config_mistakes_name_the_key_value_and_choices(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  init_args:\n    optimizer: {class_path: torch.optim.SGD\n")
    code, err = _exit(capsys, ["--config", QUICK, "--config", str(broken)])
    assert code == 2 and f"error: {broken}:4:1: YAML syntax error" in _one_error_line(err)

    code, err = _exit(capsys, ["--config", QUICK, "--model.backbone.init_args.activation", "swish"])
    line = _one_error_line(err)
    assert code == 2 and "--model.backbone.init_args.activation 'swish'" in line
    assert "expected one of relu, elu, leaky_relu, tanh, sigmoid, gelu" in line
    assert len(err.splitlines()) == 1  # not the usage text, not the nested Union report

    code, err = _exit(capsys, ["--config", QUICK, "--model.optimizer", "torch.optim.Adamm"])
    assert code == 2 and "no 'Adamm' in module 'torch.optim'" in _one_error_line(err)


def test_a_misspelt_key_is_named_where_it_was_given_with_the_nearest_one(tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    backbone = "model:\n  init_args:\n    backbone:\n      init_args:\n        hiden: [8]\n"
    cases = {
        "trainer:\n  max_step: 10\n": "2:3: trainer.max_step is not an option; did you mean "
        "max_steps?",
        "trainr:\n  max_steps: 10\n": "1:1: trainr is not an option; did you mean trainer?",
        backbone: "5:9: model.backbone.hiden: MLP has no parameter 'hiden'; did you mean hidden?",
        "data:\n  batch_sz: 8\n": "2:3: data.batch_sz: SyntheticClustersDataModule has no "
        "parameter 'batch_sz'; did you mean batch_size?",
    }
    for text, message in cases.items():
        typo.write_text(text)
        code, err = _exit(capsys, ["--config", QUICK, "--config", str(typo)])
        assert code == 2 and _one_error_line(err) == f"error: {typo}:{message}"
    code, err = _exit(capsys, ["--config", QUICK, "--trainer.max_stepz", "5"])
    assert _one_error_line(err).endswith("--trainer.max_stepz is not an option; did you mean "
                                         "--trainer.max_steps?")  # fmt: skip
    for prefix in ("--trainer.max_step", "--trainer.max_epo"):  # a prefix is no abbreviation
        code, err = _exit(capsys, ["--config", QUICK, prefix, "5"])
        assert code == 2 and f"{prefix} is not an option; did you mean" in _one_error_line(err)
    hidden = "--model.backbone.init_args.hidden"
    code, err = _exit(capsys, ["--config", QUICK, hidden, "256,128"])
    assert code == 2 and _one_error_line(err) == (
        f"error: {hidden} '256,128': expected a list; write it as [256,128]"
    )
    code, err = _exit(capsys, ["--config", QUICK, "--data.batch_sz", "5"])
    assert _one_error_line(err) == (
        "error: --data.batch_sz: SyntheticClustersDataModule has no parameter 'batch_sz'; did you "
        "mean batch_size?"
    )


def test_a_run_directory_with_foreign_files_and_a_truncated_checkpoint(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    code, err = _exit(capsys, tiny_args(*QUIET, "--run.dir", str(tmp_path / "mine")))
    assert code == 2 and "holds files (notes.txt) but no run to resume" in _one_error_line(err)

    truncated = tmp_path / "half.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    code, err = _exit(
        capsys, tiny_args(*QUIET, "--run.dir", str(tmp_path / "r"), "--ckpt_path", str(truncated))
    )
    assert code == 2 and f"error: {truncated}: truncated or not a PyTorch checkpoint" in (
        _one_error_line(err)
    )


class _Payload:
    """What a malicious checkpoint smuggles in: a call that runs while it is unpickled."""

    def __reduce__(self):
        return (os.system, ("echo code ran while loading",))


def test_fit_and_predict_name_a_pickled_payload_alike(tmp_path, capsys):
    in_zip, plain = tmp_path / "in_zip.ckpt", tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "x": _Payload()}, in_zip)
    plain.write_bytes(pickle.dumps({"state_dict": {}, "x": _Payload()}))
    for path, what in ((in_zip, "holds Python objects"), (plain, "a plain Python pickle")):
        code, err = _exit(capsys, tiny_args(*QUIET, "--run.dir", str(tmp_path / path.stem),
                                            "--ckpt_path", str(path)))  # fmt: skip
        fit_line = _one_error_line(err)
        assert (
            code == 2
            and what in fit_line
            and f"refers to {os.system.__module__}.system" in (fit_line)
        )
        capsys.readouterr()
        args = ["--ckpt", str(path), "--data-dir", str(tmp_path), "--out", str(tmp_path / "s.csv")]
        with pytest.raises(SystemExit) as stopped:
            run_main(lambda: predict_script.main(args))  # noqa: B023
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and _one_error_line(err) == fit_line
        assert "code ran" not in capsys.readouterr().out


def test_data_file_mistakes(tmp_path, capsys):
    mnist = write_mnist(tmp_path / "mnist", n_train=64, n_test=32)
    write_idx(mnist / "t10k-labels-idx1-ubyte.gz", np.full(32, 10, np.uint8))  # a label 10
    args = ["--config", MNIST, "--data.data_dir", str(mnist), "--data.val_split", "8"]
    code, err = _exit(capsys, [*args, *QUIET, "--run.dir", str(tmp_path / "m")])
    assert code == 2 and "t10k-labels-idx1-ubyte.gz" in _one_error_line(err)

    cifar = write_cifar10(tmp_path / "cifar")
    batch = cifar / "cifar-10-batches-py" / "data_batch_2"
    entry = pickle.loads(batch.read_bytes(), encoding="latin1")
    entry["labels"] = entry["labels"][:-1]  # 19 labels for 20 images
    batch.write_bytes(pickle.dumps(entry, protocol=2))
    args = ["--config", CIFAR, "--data.data_dir", str(cifar), "--data.val_split", "10"]
    code, err = _exit(capsys, [*args, *QUIET, "--run.dir", str(tmp_path / "c")])
    assert code == 2 and "data_batch_2" in _one_error_line(err)

    inside = cifar / "cifar-10-batches-py"  # one folder too deep
    args = ["--config", CIFAR, "--data.data_dir", str(inside), "--data.val_split", "10"]
    code, err = _exit(capsys, [*args, *QUIET, "--run.dir", str(tmp_path / "c")])
    assert code == 2 and _one_error_line(err) == (
        f"error: CIFAR-10 data_dir {inside} holds the batches themselves; data_dir is the folder "
        f"above cifar-10-batches-py: set data_dir: {cifar}"
    )

    wsj = tmp_path / "wsj"
    write_corpus(wsj)
    (wsj / "dev_labels.npy").unlink()
    code, err = _exit(capsys, ["--config", WSJ, "--data.data_dir", str(wsj), *QUIET,
                               "--data.source", "kaggle", "--data.num_workers", "0",
                               "--run.dir", str(tmp_path / "w")])  # fmt: skip
    assert code == 2 and "dev_labels.npy" in _one_error_line(err)
    nowhere = ["--data.data_dir", str(tmp_path / "nowhere"), "--data.source", "kaggle"]
    code, err = _exit(capsys, ["--config", WSJ, *nowhere, *QUIET, "--run.dir", str(tmp_path / "w")])
    assert code == 2 and "(found: the folder does not exist)" in _one_error_line(err)


def test_a_run_that_failed_before_any_checkpoint_can_be_retried_in_its_directory(tmp_path, capsys):
    run_dir = tmp_path / "r"
    args = ["--config", MNIST, "--data.val_split", "8", "--data.batch_size", "16", *QUIET,
            "--trainer.accelerator", "cpu", "--trainer.precision", "32-true",
            "--trainer.max_steps", "2", "--run.dir", str(run_dir)]  # fmt: skip
    code, _ = _exit(capsys, [*args, "--data.data_dir", str(tmp_path / "wrong")])
    assert code == 2 and json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    mnist = write_mnist(tmp_path / "mnist", n_train=64, n_test=32)
    summary = main([*args, "--data.data_dir", str(mnist)])  # the same command, fixed
    assert summary["status"] == "completed" and summary["global_step"] == 2

    (run_dir / "summary.json").write_text('{"status": "failed"}')  # failed after checkpoints
    code, err = _exit(capsys, [*args, "--data.data_dir", str(mnist)])
    assert code == 2 and "already holds a run (checkpoints/ exists)" in _one_error_line(err)
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "notes.txt").write_text("mine")  # a user's file: never written over
    code, err = _exit(capsys, [*args, "--data.data_dir", str(mnist)])
    line = _one_error_line(err)
    assert code == 2 and "notes.txt" in line and "but no run to resume" in line


def test_mnist_file_mistakes(tmp_path, capsys):
    args = ["--config", MNIST, "--data.val_split", "8", *QUIET, "--run.dir", str(tmp_path / "r")]
    missing = tmp_path / "nowhere"
    code, err = _exit(capsys, [*args, "--data.data_dir", str(missing)])
    assert code == 2 and f"MNIST data_dir {missing} does not exist" in _one_error_line(err)

    mnist = write_mnist(tmp_path / "mnist", n_train=64, n_test=32)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (mnist / name).unlink()
    code, err = _exit(capsys, [*args, "--data.data_dir", str(mnist)])
    line = _one_error_line(err)
    assert code == 2 and "'t10k-images-idx3-ubyte' not found" in line
    assert "Missing: t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte" in line

    raw = write_mnist(tmp_path / "torchvision" / "MNIST" / "raw", n_train=64, n_test=32)
    code, err = _exit(capsys, [*args, "--data.data_dir", str(raw.parent)])  # one folder short
    assert code == 2 and f"is in {raw}, not in {raw.parent}: set data_dir: {raw}" in (
        _one_error_line(err)
    )

    write_mnist(mnist, n_train=64, n_test=32)
    images = mnist / "train-images-idx3-ubyte.gz"
    write_idx(images, np.zeros((60, 28, 28), np.uint8))  # 60 images for 64 labels
    code, err = _exit(capsys, [*args, "--data.data_dir", str(mnist)])
    assert code == 2 and f"{images} has 60 images but" in _one_error_line(err)
    write_idx(images, np.zeros((64, 28, 27), np.uint8))
    code, err = _exit(capsys, [*args, "--data.data_dir", str(mnist)])
    assert code == 2 and "images are uint8 (28, 27), expected uint8 (28, 28)" in (
        _one_error_line(err)
    )


@pytest.mark.parametrize(
    ("config", "option", "value", "message"),
    [
        (MNIST, "batch_size", "-5", "MNISTDataModule: batch_size=-5, expected at least 1"),
        (MNIST, "batch_size", "0", "MNISTDataModule: batch_size=0, expected at least 1"),
        (CIFAR, "eval_batch_size", "0", "CIFAR10DataModule: eval_batch_size=0, expected"),
        (WSJ, "context", "-1", "SpeechFramesDataModule: context=-1, expected at least 0"),
        (WSJ, "batch_size", "0", "SpeechFramesDataModule: batch_size=0, expected at least 1"),
        (QUICK, "batch_size", "-5", "SyntheticClustersDataModule: batch_size=-5, expected"),
        (QUICK, "trainer.val_check_interval", "0", "--trainer: val_check_interval=0, expected"),
        (QUICK, "trainer.accumulate_grad_batches", "0", "accumulate_grad_batches=0, expected"),
        (QUICK, "trainer.max_epochs", "-3", "--trainer: `max_epochs` must be a non-negative"),
        (QUICK, "run.checkpoint_every_n_steps", "-1", "checkpoint_every_n_steps=-1, expected"),
        (QUICK, "run.signal_check_every_n_steps", "0", "signal_check_every_n_steps=0, expected"),
        (QUICK, "run.signal_check_every_n_steps", "-1", "signal_check_every_n_steps=-1, expe"),
        (QUICK, "model.init_args.label_smoothing", "-1", "label_smoothing=-1.0, expected 0..1"),
        (QUICK, "trainer.gradient_clip_val", "-1", "--trainer: gradient_clip_val=-1, expected"),
        (QUICK, "seed_everything", "-5", "--seed_everything -5: expected 0..4294967295"),
        (QUICK, "model.backbone.init_args.hidden", "[8,0]", "MLP hidden=[8, 0]: every layer"),
        (QUICK, "model.backbone.init_args.dropout", "2", "--model.backbone: MLP: dropout prob"),
        (QUICK, "model.optimizer.init_args.lr", "-1", "--model.optimizer: Adam"),
    ],
)  # fmt: skip
def test_out_of_range_options_are_one_line(tmp_path, capsys, config, option, value, message):
    key = option if "." in option or option == "seed_everything" else f"data.{option}"
    data_dir = [] if config == QUICK else ["--data.data_dir", str(tmp_path)]
    run_dir = ["--run.dir", str(tmp_path / "r")]
    code, err = _exit(capsys, ["--config", config, f"--{key}", value, *data_dir, *QUIET, *run_dir])
    assert code == 2 and message in _one_error_line(err)
    assert not (tmp_path / "r").exists() or "optimizer" in option  # built when fitting starts


def test_the_process_prints_one_line_and_the_traceback_only_when_asked(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")  # refused: a directory that is no run
    args = ["--config", QUICK, *QUIET, "--run.dir", str(tmp_path / "mine")]
    env = {"PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"}
    plain = subprocess.run([sys.executable, "-m", "lightning_dl.fit", *args], capture_output=True,
                           text=True, cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert plain.returncode == 2 and "no run to resume" in _one_error_line(plain.stderr)
    monkeypatch.setenv("LIGHTNING_DL_DEBUG", "1")  # the error itself, with its traceback
    with pytest.raises(UserInputError, match="no run to resume"):
        run_main(lambda: main(args))


def _disk_full_while_a_temp_file_exists(monkeypatch, folder) -> None:
    """The free space of a disk that the partial temp file filled: none while it exists."""

    def disk_usage(path):
        full = any(p.name.endswith(".tmp") for p in folder.iterdir())
        return shutil._ntuple_diskusage(10**9, 10**9 if full else 0, 0 if full else 10**9)

    monkeypatch.setattr("data_modules.errors.shutil.disk_usage", disk_usage)


def test_a_full_disk_is_named_and_the_old_checkpoint_kept(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def full_disk_save(obj, f, *args, **kwargs):
        f.write(b"PK" * 1000)  # what fitted, then torch's zip writer gives up
        raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk_save)
    _disk_full_while_a_temp_file_exists(monkeypatch, tmp_path)
    with pytest.raises(DiskFullError, match=f"{path}: the disk is full"):
        io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


def test_a_run_directory_on_a_read_only_mount_is_one_line(tmp_path, monkeypatch, capsys):
    def read_only(*args, **kwargs):  # as root, permissions would not stop us: a read-only mount
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("data_modules.io.atomic.tempfile.mkstemp", read_only)
    monkeypatch.setattr(  # such a mount also reports no free space: still not a full disk
        "data_modules.errors.shutil.disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 0)
    )
    run_dir = tmp_path / "r"
    code, err = _exit(capsys, tiny_args(*QUIET, "--run.dir", str(run_dir)))
    assert code == 2 and _one_error_line(err) == (
        f"error: {run_dir}/summary.json: cannot write into {run_dir} (Read-only file system); "
        "choose a folder that can be written"
    )


def test_a_full_disk_while_writing_a_submission_is_one_line(tmp_path, monkeypatch, capsys):
    """kaggle/predict.py writes its CSV with np.savetxt, which reports a short write."""
    out = tmp_path / "submission.csv"
    out.write_text("id,label\n0,1\n")  # the old submission stays

    def short_write(path, *args, **kwargs):
        Path(path).write_text("id,label\n0,")
        raise OSError("1200 requested and 64 written")

    monkeypatch.setattr(np, "savetxt", short_write)
    _disk_full_while_a_temp_file_exists(monkeypatch, tmp_path)

    def write() -> None:
        with atomic_path(out) as tmp:  # as kaggle/predict.py writes it
            submission.write_submission(tmp, np.arange(5), "id,label", None)

    with pytest.raises(SystemExit) as stopped:
        run_main(write)
    assert stopped.value.code == 1
    assert f"error: {out}: the disk is full" in _one_error_line(capsys.readouterr().err)
    assert out.read_text() == "id,label\n0,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]
