"""DDP on CPU (gloo, 2 processes): parity with 1 process, every sample once, rank-0-only writes,
no hang when one rank fails (exception or NaN), prediction files byte-identical to 1 process.

Each test launches one 2-process run (~15-40 s on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from data_modules.synthetic import make_clusters
from lightning_dl.fit import main
from tests.helpers.tiny_runs import BF16, ROOT, run_fit, tiny_args
from tests.helpers.wandb_offline import read_offline_run

DDP = ("--trainer.devices", "2", "--trainer.strategy", "ddp")
# No BatchNorm: per-rank batch statistics differ from the global batch's (SyncBatchNorm is
# GPU-only), everything else in this model is exactly a mean over the global batch.
PARITY = ("--model.backbone.init_args.norm", "none", "--trainer.val_check_interval", "8")
TOLERANCE = 1e-5  # float32 gradient all-reduce vs one big batch: measured differences ~1e-7
# bf16-mixed: each rank's gradients come out of bf16 matmuls rounded to 8 significant bits
# (2^-8 = 0.4% relative), once per half-batch instead of once for the whole batch, so losses may
# drift by a fraction of that over 16 steps; the accuracies are allowed one sample of 128 apart.
BF16_LOSS_REL, BF16_ACC_ABS = 2e-3, 1 / 128


@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=BF16)])
def test_two_processes_match_one_and_see_every_sample_once(tmp_path, precision):
    single = main(
        tiny_args(*PARITY, "--run.dir", str(tmp_path / "single"), "--trainer.logger", "false",
                  steps=16, precision=precision)
    )  # fmt: skip
    record = tmp_path / "batches"
    done = run_fit(
        tiny_args(
            *PARITY, *DDP, "--data.batch_size", "32",  # 2 x 32 = the single run's 64
            "--run.root", str(tmp_path / "runs"), "--run.name", "ddp",
            "--trainer.callbacks+=tests.helpers.faults.RecordBatches",
            "--trainer.callbacks.out_dir", str(record),
            steps=16, precision=precision,
        )
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # one run directory for both ranks, written by rank 0 only
    (run_dir,) = [d for d in (tmp_path / "runs" / "ddp").iterdir() if not d.is_symlink()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and not (run_dir / "errors").exists()
    assert (run_dir / "metrics.csv").read_text().count("epoch,step") == 1
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    assert str(read_offline_run(wandb_run)["config"]["trainer"]["devices"]) == "2"

    assert summary["precision"] == single["precision"] == precision
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        if precision == "32-true":
            assert summary[key] == pytest.approx(single[key], abs=TOLERANCE), key
        elif key.endswith("loss"):
            assert summary[key] == pytest.approx(single[key], rel=BF16_LOSS_REL), key
        else:
            assert summary[key] == pytest.approx(single[key], abs=BF16_ACC_ABS + 1e-9), key

    # every training sample exactly once per epoch, the two ranks disjoint
    points, _ = make_clusters(768, 32, 10, noise=1.6, seed=0)
    index_of = {tuple(row): i for i, row in enumerate(points[:512, :2].tolist())}
    seen = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        per_rank = [[index_of[tuple(row)] for row in s[epoch]] for s in seen]
        assert len(per_rank[0]) == len(per_rank[1]) == 256
        assert sorted(per_rank[0] + per_rank[1]) == list(range(512))


def test_exception_in_one_rank_does_not_hang_the_other(tmp_path):
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = run_fit(
        tiny_args(
            *DDP, "--run.dir", str(run_dir), "--trainer.logger", "false",
            "--trainer.callbacks+=tests.helpers.faults.RaiseOnRank",
            "--trainer.callbacks.rank", "1", "--trainer.callbacks.step", "3",
        ),
        timeout=240,  # a hang shows up as subprocess.TimeoutExpired
    )  # fmt: skip
    assert done.returncode != 0
    error = json.loads((run_dir / "errors" / "rank1.json").read_text())
    assert error["status"] == "failed" and error["global_step"] == 3
    assert "injected failure on rank 1 at step 3" in error["error"]
    summary = json.loads((run_dir / "summary.json").read_text())  # rank 0 names the cause
    assert summary["status"] == "failed"
    assert "injected failure on rank 1" in summary["other_ranks"]["rank1"]
    print(f"failed run ended after {time.monotonic() - started:.1f} s")


def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    done = run_fit(
        tiny_args(
            *DDP, "--run.dir", str(run_dir), "--trainer.logger", "false",
            "--trainer.callbacks+=tests.helpers.faults.NanInputOnRank",
            "--trainer.callbacks.rank", "1", "--trainer.callbacks.step", "5",
        ),
        timeout=240,
    )  # fmt: skip
    assert done.returncode != 0
    rank0 = json.loads((run_dir / "summary.json").read_text())
    rank1 = json.loads((run_dir / "errors" / "rank1.json").read_text())
    assert rank0["status"] == rank1["status"] == "failed"
    # the NaN reaches both ranks' gradients through the all-reduce: both skip that update and
    # both read their flags at the next logging step (4 batches an epoch per rank)
    assert rank0["global_step"] == rank1["global_step"] == 10
    for rank in (rank0, rank1):
        assert (
            "non-finite training loss or gradient at global step 5 (epoch 1, batch index 1)"
            in (rank["error"])
        )


def test_prediction_csv_is_byte_identical_under_ddp(tmp_path):
    def predict(devices: int) -> tuple[bytes, bytes]:
        out, naive = tmp_path / f"{devices}.csv", tmp_path / f"{devices}-naive.csv"
        done = subprocess.run(
            [sys.executable, "-m", "tests.helpers.ddp_predict", str(devices), str(out), str(naive)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return out.read_bytes(), naive.read_bytes()

    one, naive_one = predict(1)
    two, naive_two = predict(2)
    assert one.count(b"\n") == 102 and one == naive_one  # header + 101 rows
    assert two == one
    assert naive_two != one  # plain trainer.predict on rank 0: only its share of the rows
