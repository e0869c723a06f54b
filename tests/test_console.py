"""The console: plain lines when not a terminal, one live bar on one, harmless notices dropped."""

from __future__ import annotations

import io
import logging
import re
import threading
import warnings
from collections import Counter
from typing import Any

import pytest
import pytorch_lightning as pl
import rich
from pytorch_lightning.callbacks import RichModelSummary, TQDMProgressBar
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from lightning_dl.training import console
from lightning_dl.training.cli import LightningDLCLI
from lightning_dl.training.console.progress import LineSchedule
from tests.helpers.host_reads import HostReadsPerStep, counting_tensor_reads
from tests.helpers.tiny_runs import BF16, run_fit, tiny_args

SILENCED = ("litlogger", "LeafSpec", "TPU available: False", "anonymous setting", "wandb: ",
            "weights_only", "Automatic Mixed Precision")  # fmt: skip


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=BF16)])
def test_a_run_logged_to_a_file_is_a_few_plain_lines(tmp_path, precision):
    """30 steps, validation every 10: no redraws, one line per validation, the notices gone (under
    bf16 too, the precision of every GPU run: Lightning's model-summary notice is not printed)."""
    args = tiny_args("--trainer.enable_progress_bar", "true", "--run.root", str(tmp_path),
                     precision=precision)  # fmt: skip
    result = run_fit(args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "\r" not in output and "\x1b" not in output  # no redraws, no terminal codes
    lines = output.splitlines()
    assert len(lines) <= 25, output
    validations = [line for line in lines if line.startswith("val   step")]
    assert [line.split()[2] for line in validations] == ["10/30", "20/30", "30/30"], output
    assert all(
        re.search(r"loss \d\.\d{4}  acc \d\.\d{4}  \(best acc \d\.\d{4}\)", v) for v in validations
    )
    training = [line for line in lines if line.startswith("train step")]
    assert 1 <= len(training) <= 3 and training[-1].startswith("train step 30/30  loss ")
    assert not [line for line in lines if any(notice in line for notice in SILENCED)], output
    assert "GPU available: False, used: False" in output  # the informative ones stay
    assert "model: 13.5 K parameters, 0.1 MB" in output and "wandb sync" in output
    assert (
        f"precision: {precision}" in output and "not supported by the model summary" not in output
    )


def test_line_schedule_every_tenth_but_not_more_often_than_30s():
    def lines_printed(seconds_per_step: float, total: int = 1000) -> list[int]:
        schedule = LineSchedule(total, last_time=0.0)
        printed = []
        for step in range(1, total + 1):
            if schedule.due(step, step * seconds_per_step):
                schedule.mark(step, step * seconds_per_step)
                printed.append(step)
        return printed

    assert lines_printed(0.01) == [1000]  # 10 s in all: only the last step
    assert lines_printed(1.0) == list(range(100, 1001, 100))  # 10% = 100 s >= 30 s
    assert lines_printed(0.1) == [300, 600, 900, 1000]  # 10% = 10 s: every 30 s instead
    assert lines_printed(60.0)[:3] == [5, 10, 15]  # 10% = 6000 s: a line every 5 minutes
    unknown = LineSchedule(float("inf"), last_time=0.0)
    assert not unknown.due(10, 29.0) and unknown.due(11, 31.0)  # unknown length: every 30 s


@pytest.fixture
def clean_notices(monkeypatch):
    """Undo what silence_harmless_notices changes outside a warnings context."""
    for name in ("WANDB_SILENT", "WANDB_QUIET", "WANDB_MODE"):
        monkeypatch.setenv(name, "")  # remembered, so that teardown restores it
        monkeypatch.delenv(name)
    yield
    for name in console.LIGHTNING_LOGGERS:
        logging.getLogger(name).removeFilter(console._not_harmless)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_silencer_drops_exactly_the_listed_notices(clean_notices, monkeypatch):
    from pytorch_lightning.utilities._pytree import _tree_flatten

    leafspec = "`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, ..."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monkeypatch.setenv("WANDB_MODE", "offline")
        console.silence_harmless_notices()
        _tree_flatten(1)  # pytorch_lightning builds torch's deprecated LeafSpec
        warnings.warn(
            "LightningCLI's args parameter is intended to run from within Python ...", stacklevel=1
        )
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)
        warnings.warn_explicit(leafspec, FutureWarning, "user.py", 1, module="user_code")
    assert [str(w.message) for w in caught] == ["an unrelated warning", leafspec]

    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    records = _Records()
    logger.addHandler(records)
    try:
        for message in sorted(console.HARMLESS_LOG_MESSAGES):
            rank_zero_info(message)
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("TPU available: True, using: 8 TPU cores")
    finally:
        logger.removeHandler(records)
    assert records.messages == [
        "GPU available: False, used: False",
        "TPU available: True, using: 8 TPU cores",
    ]
    assert __import__("os").environ["WANDB_SILENT"] == "true"  # offline: the table says `sync`


def test_wandb_keeps_its_essentials_online_and_the_users_choice(clean_notices, monkeypatch):
    import os

    monkeypatch.setenv("WANDB_MODE", "online")
    with warnings.catch_warnings():
        console.silence_harmless_notices()
    assert os.environ["WANDB_QUIET"] == "true" and "WANDB_SILENT" not in os.environ
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "false")
    with warnings.catch_warnings():
        console.silence_harmless_notices()
    assert os.environ["WANDB_SILENT"] == "false"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_configure_console_replaces_only_lightnings_defaults(tmp_path):
    def trainer(**kwargs) -> pl.Trainer:
        return pl.Trainer(
            logger=False, enable_checkpointing=False, default_root_dir=tmp_path, **kwargs
        )

    default = trainer()
    console.configure_console(default, None, io.StringIO())
    assert isinstance(default.progress_bar_callback, console.LogProgressBar)
    assert [type(cb) for cb in default.callbacks].count(console.CompactModelSummary) == 1
    live = trainer()
    console.configure_console(live, None, _Terminal())
    assert isinstance(live.progress_bar_callback, console.LiveProgressBar)
    theirs = [TQDMProgressBar(refresh_rate=5), RichModelSummary(max_depth=2)]
    configured = trainer(callbacks=theirs)
    console.configure_console(configured, theirs, io.StringIO())
    assert configured.progress_bar_callback is theirs[0] and theirs[1] in configured.callbacks
    off = trainer(enable_progress_bar=False, enable_model_summary=False)
    console.configure_console(off, None, io.StringIO())
    assert off.progress_bar_callback is None


def _screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: lines, carriage returns, cursor up, erase line."""
    lines, row, col = [""], 0, 0
    for match in re.finditer(r"\x1b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+", raw):
        text = match.group(0)
        if text == "\n":
            row, col = row + 1, 0
        elif text == "\r":
            col = 0
        elif match.group(2) == "A":
            row = max(0, row - int(match.group(1) or 1))
        elif match.group(2) == "K":
            lines[row] = ""
        elif not text.startswith("\x1b"):
            lines[row] = lines[row][:col].ljust(col) + text + lines[row][col + len(text) :]
            col += len(text)
        lines += [""] * (row + 1 - len(lines))
    return [line.rstrip() for line in lines if line.strip()]


def _fit_counting_reads(tmp_path, bar: pl.Callback, monkeypatch) -> tuple[LightningDLCLI, Any]:
    """A tiny in-process run with ``bar`` as its progress bar, counting host reads per step."""
    monkeypatch.setattr(console, "progress_bar_for", lambda stream: bar)
    args = ("--trainer.enable_progress_bar", "true", "--run.dir", str(tmp_path / "run"))
    args += ("--trainer.logger", "false")  # (wandb's own reads are not the bar's)
    cli = LightningDLCLI(args=tiny_args(*args))
    assert cli.trainer.progress_bar_callback is bar
    recorder = HostReadsPerStep(Counter())
    cli.trainer.callbacks.insert(0, recorder)
    with counting_tensor_reads(recorder.counts):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # 30 steps, epochs of 8: every 5th logs, every 10th validates, 4 end an epoch
    assert len(recorder.quiet) >= 15, recorder.loud
    assert not {s: dict(recorder.per_step[s]) for s in recorder.quiet if recorder.per_step[s]}
    return cli, recorder


def test_log_lines_read_nothing_from_the_device_on_quiet_steps(tmp_path, monkeypatch, capsys):
    every_step = console.LogProgressBar(every_fraction=0.0, min_interval_s=0.0)  # a line a step
    _fit_counting_reads(tmp_path, every_step, monkeypatch)
    lines = capsys.readouterr().out.splitlines()
    training = [line for line in lines if line.startswith("train step")]
    assert len(training) == 30 and training[0].startswith("train step 1/30  ")
    assert "loss " in training[-1] and "acc " in training[-1]  # progress_values, shown


class _ThreadRecordingTerminal(io.StringIO):
    """A terminal's output that remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[int] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.get_ident())
        return super().write(text)


def test_a_terminal_keeps_one_training_bar_and_the_validation_lines(tmp_path, monkeypatch):
    terminal = _ThreadRecordingTerminal()
    kwargs = {"file": terminal, "force_terminal": True, "width": 120}
    bar = console.LiveProgressBar(refresh_per_second=50, console_kwargs=kwargs)  # draws often
    try:
        cli, _ = _fit_counting_reads(tmp_path, bar, monkeypatch)
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    finally:
        rich.reconfigure()  # the global rich console back to stdout
    screen = _screen(terminal.getvalue())
    validations = [line.split()[2] for line in screen if line.startswith("val   step")]
    assert validations == ["10/30", "20/30", "30/30"], screen
    bars = [line for line in screen if "━" in line]
    assert len(bars) == 1 and bars[0].startswith("train") and "30/30" in bars[0], screen
    assert "loss: " in bars[0] and "acc: " in bars[0]
    assert not [line for line in screen if re.match(r"(Validation|Sanity|Testing)", line)]
    # drawn by the training thread alone: a background redraw can erase a line printed above
    # the bar (a lost `val step` line under load), however rarely the timing allows it
    assert terminal.writers == {threading.get_ident()}
