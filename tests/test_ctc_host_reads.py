"""The CTC training step never waits for the device on a quiet step (see test_host_reads.py)."""

from __future__ import annotations

from collections import Counter

from lightning_dl.training.cli import LightningDLCLI
from tests.helpers.ctc_corpus import write_wsj
from tests.helpers.host_reads import HostReadsPerStep, counting_tensor_reads
from tests.test_ctc_runs import ROOT, TINY


def test_quiet_ctc_steps_read_nothing_from_the_device(tmp_path):
    data = write_wsj(tmp_path / "d")
    args = [
        "--config", str(ROOT / "configs" / "wsj_ctc.yaml"), "--data.data_dir", str(data),
        "--data.source", "auto", *TINY, "--run.dir", str(tmp_path / "run"),
        "--trainer.max_steps", "16", "--trainer.val_check_interval", "100",
        "--trainer.log_every_n_steps", "8", "--data.augment", "{freq_mask: 4, time_mask: 3}",
    ]  # fmt: skip
    cli = LightningDLCLI(args=args)
    counts: Counter = Counter()
    recorder = HostReadsPerStep(counts)
    cli.trainer.callbacks.insert(0, recorder)
    with counting_tensor_reads(counts):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(recorder.quiet) >= 8, recorder.loud
    reads = {step: dict(recorder.per_step[step]) for step in recorder.quiet}
    assert all(not r for r in reads.values()), {s: r for s, r in reads.items() if r}
    loud = [recorder.per_step[s] for s in recorder.loud if s in recorder.per_step]
    assert any(sum(c.values()) > 0 for c in loud)  # the logging steps read the loss
