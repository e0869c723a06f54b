"""The checkpoint reader refuses another task's checkpoint in one line, and resumes quietly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from data_modules.errors import run_main
from lightning_dl.fit import main as fit_main
from tests.helpers.ctc_corpus import write_wsj
from tests.helpers.tiny_runs import ROOT, run_fit, tiny_args

FIXTURE = Path(__file__).parent / "fixtures" / "pre_relayout"
CPU = ("--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--trainer.logger",
       "false", "--trainer.enable_progress_bar", "false")  # fmt: skip
CTC = (
    "--config", str(ROOT / "configs" / "wsj_ctc.yaml"), "--data.source", "auto", *CPU,
    "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
    "--model.backbone.init_args.channels", "[8]", "--model.backbone.init_args.hidden", "8",
    "--model.backbone.init_args.layers", "1", "--model.backbone.init_args.stride", "1",
    "--model.lr_scheduler", "null", "--data.batch_size", "6", "--data.augment", "null",
)  # fmt: skip
FRAMES = (
    "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), *CPU, "--data.context", "2",
    "--data.num_workers", "0", "--model.init_args.backbone.init_args.hidden", "[8]",
    "--trainer.max_steps", "2",
)  # fmt: skip


def _refused(capsys, args: list[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: fit_main(args))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert stopped.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_the_other_tasks_checkpoint_is_one_line_naming_both(tmp_path, capsys):
    ctc_data = write_wsj(tmp_path / "ctc")
    frames_data = shutil.copytree(FIXTURE / "corpus", tmp_path / "frames")
    fit_main([*CTC, "--data.data_dir", str(ctc_data), "--run.dir", str(tmp_path / "ctc_run")])
    ctc_ckpt = tmp_path / "ctc_run" / "checkpoints" / "last.ckpt"
    frames_ckpt = FIXTURE / "checkpoints" / "best.ckpt"  # written before the re-layout

    classifier, ctc = "a Classifier (backbone MLP)", "a CTCRecognizer (backbone ConvBiLSTM)"
    for config, data, ckpt, held, asked in (
        (CTC, ctc_data, frames_ckpt, classifier, ctc),
        (FRAMES, frames_data, ctc_ckpt, ctc, classifier),
    ):
        run = ["--data.data_dir", str(data), "--run.dir", str(tmp_path / ckpt.stem)]
        line = _refused(capsys, [*config, *run, "--ckpt_path", str(ckpt)])
        said = (
            f"error: {ckpt}: holds {held}, but the config asks for {asked}; its weights do not fit"
        )
        assert re.fullmatch(re.escape(said) + r" \(.+; \d+ in all\)", line), line


def test_a_resume_prints_no_weights_only_notice(tmp_path):
    """Lightning says "`weights_only` was not set" at each save that does not say it."""
    args = tiny_args("--run.dir", str(tmp_path), "--trainer.logger", "false",
                     "--run.checkpoint_every_n_steps", "5", steps=10)  # fmt: skip
    first = run_fit(args)
    resumed = run_fit([*args, "--trainer.max_steps", "20", "--ckpt_path", "last"])
    for done in (first, resumed):
        assert done.returncode == 0, done.stderr[-2000:]
        assert "weights_only" not in done.stdout + done.stderr
    assert "Restored all states from the checkpoint" in resumed.stdout + resumed.stderr
