"""Run directories: never overwrite what a user has, clean up after killed writers, `latest`."""

from __future__ import annotations

import json
import time

import pytest
import torch

from data_modules.errors import UserInputError
from lightning_dl.fit import main
from lightning_dl.training.run.directory import remove_stale_temp_files, wandb_run_id
from tests.helpers.tiny_runs import tiny_args

QUICK_RUN = ("--trainer.max_steps", "10", "--trainer.logger", "false")


def test_a_directory_with_files_but_no_run_is_refused_and_left_alone(tmp_path):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    for name, text in (("config.yaml", "mine: 1\n"), ("metrics.csv", "a,b\n"), ("notes.txt", "x")):
        (run_dir / name).write_text(text)
    with pytest.raises(UserInputError, match=r"already exists and holds files \(config.yaml, "):
        main(tiny_args(*QUICK_RUN, "--run.dir", str(run_dir)))
    assert (run_dir / "config.yaml").read_text() == "mine: 1\n"  # untouched
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "metrics.csv", "notes.txt"]
    with pytest.raises(UserInputError, match="already exists and holds files"):
        main(tiny_args(*QUICK_RUN, "--run.dir", str(run_dir), "--run.auto_resume", "true"))


def test_an_empty_directory_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(tiny_args(*QUICK_RUN, "--run.dir", str(tmp_path / "empty")))["status"] == (
        "completed"
    )


def test_stale_temp_files_of_killed_writers_are_removed_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    main(tiny_args(*QUICK_RUN, "--run.dir", str(run_dir), "--run.checkpoint_every_n_steps", "5"))
    checkpoints = run_dir / "checkpoints"
    stale = [checkpoints / ".last.ckpt.k2j_9x0a.tmp", checkpoints / ".best.ckpt.q1w2e3r4.tmp",
             run_dir / ".summary.json.abcd1234.tmp"]  # fmt: skip
    for path in stale:
        path.write_bytes(b"half a file")
    foreign = checkpoints / "my-notes.tmp"  # not of our naming: kept
    foreign.write_text("keep me")
    json_summary = json.loads((run_dir / "summary.json").read_text())
    json_summary["status"] = "failed"  # pretend it died, so that it can be continued
    (run_dir / "summary.json").write_text(json.dumps(json_summary))
    main(tiny_args("--trainer.max_steps", "15", "--trainer.logger", "false",
                   "--run.dir", str(run_dir), "--ckpt_path", "last"))  # fmt: skip
    assert not any(path.exists() for path in stale) and foreign.read_text() == "keep me"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 15


def test_remove_stale_temp_files_only_touches_our_names(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    ours = tmp_path / "checkpoints" / ".last.ckpt.abcdefgh.tmp"
    theirs = [tmp_path / ".hidden.tmp", tmp_path / "last.ckpt.tmp", tmp_path / ".x.toolongname.tmp"]
    for path in (ours, *theirs):
        path.write_text("x")
    assert remove_stale_temp_files(tmp_path) == [ours]
    assert all(path.exists() for path in theirs)


def test_latest_link_only_for_directories_we_named(tmp_path):
    main(tiny_args(*QUICK_RUN, "--run.root", str(tmp_path / "runs"), "--run.name", "exp"))
    (made,) = [d for d in (tmp_path / "runs" / "exp").iterdir() if not d.is_symlink()]
    assert (tmp_path / "runs" / "exp" / "latest").resolve() == made.resolve()


def test_a_run_shorter_than_its_first_validation_still_has_a_best_checkpoint(tmp_path):
    run_dir = tmp_path / "short"
    summary = main(tiny_args(*QUICK_RUN, "--trainer.val_check_interval", "1000",
                             "--run.dir", str(run_dir)))  # fmt: skip
    best = run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and summary["tested_checkpoint"] == str(best)
    assert torch.load(best, weights_only=True)["global_step"] == 10  # validated at the end


def test_checkpointing_off_is_honoured(tmp_path):
    summary = main(tiny_args(*QUICK_RUN, "--trainer.enable_checkpointing", "false",
                             "--run.dir", str(tmp_path / "r")))  # fmt: skip
    assert not (tmp_path / "r" / "checkpoints").exists()
    assert summary["tested_checkpoint"].startswith("the final weights")


def test_a_resume_in_the_second_its_wandb_segment_started_waits_for_a_new_folder(tmp_path):
    """wandb names a segment by its start second: the same second would reuse (truncate) it."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    (tmp_path / "wandb" / f"offline-run-{stamp}-abc123").mkdir(parents=True)
    assert wandb_run_id(tmp_path) == "abc123"
    assert wandb_run_id(tmp_path, wait_for_new_segment=True) == "abc123"
    assert time.strftime("%Y%m%d_%H%M%S") != stamp
