"""Two nodes on one machine, out of step (CPU, gloo, one process per node, node 1 starts late).

- torchrun on each "node": one run directory written by rank 0, every sample once per epoch,
  the metrics of one process with the global batch, no collective on a quiet step;
- SIGTERM to one node only: every rank stops at one agreed step, one complete last.ckpt,
  ``interrupted``, exit 143; the same command again resumes to the uninterrupted run's end;
- SLURM (its environment by hand, a stand-in ``scontrol``): the requeue signal, heard by the
  ranks at different steps, checkpoints, requeues once, and the requeued job continues exactly;
  configs/slurm/two_nodes.sbatch starts a command the CLI accepts.

Each two-node launch costs two processes that import Lightning (~10 s on a quiet 2-core host).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from data_modules.synthetic import make_clusters
from lightning_dl.fit import main
from lightning_dl.training.cli import LightningDLCLI
from lightning_dl.training.run.checkpoint_io import read_checkpoint
from tests.helpers.ddp_predict import main as predict_csv
from tests.helpers.tiny_runs import QUICK, ROOT, tiny_args
from tests.helpers.two_nodes import TWO_NODES, srun_two_tasks, torchrun_two_nodes

# No BatchNorm or dropout: every step is then exactly a mean over the global batch (2 x 32 on two
# nodes, 64 in one process). 8 steps an epoch, validation at 8 and 16, logging every 5.
PARITY = (
    "--model.backbone.init_args.norm", "none", "--trainer.val_check_interval", "8",
    "--trainer.precision", "32-true", "--trainer.logger", "[]",
)  # fmt: skip
TOLERANCE = 1e-5  # float32 gradient all-reduce vs one big batch: measured differences ~1e-7
SBATCH = ROOT / "configs" / "slurm" / "two_nodes.sbatch"
EXIT_143 = re.compile(r"exitcode\s*:\s*143")


def _two_node_args(run_dir: Path, *extra: str) -> list[str]:
    """The one command every attempt of a job runs (auto_resume, as a resubmitted job has)."""
    return tiny_args(
        *PARITY, *TWO_NODES, "--data.batch_size", "32", "--run.dir", str(run_dir),
        "--run.auto_resume", "true", *extra, steps=16,
    )  # fmt: skip


def _signal(rank: int, step: int, name: str = "SIGTERM") -> list[str]:
    return [
        "--trainer.callbacks+=tests.helpers.faults.SignalOnRank",
        "--trainer.callbacks.rank", str(rank),
        "--trainer.callbacks.step", str(step), "--trainer.callbacks.signal", name,
    ]  # fmt: skip


def _ok(nodes) -> None:
    for node, launched in enumerate(nodes):
        assert launched.returncode == 0, f"node {node}:\n{launched.output[-3000:]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """An uninterrupted two-node run, recording its batches and its host reads per step."""
    out = tmp_path_factory.mktemp("uninterrupted")
    nodes = torchrun_two_nodes(
        _two_node_args(
            out / "run",
            "--trainer.callbacks+=tests.helpers.faults.RecordBatches",
            "--trainer.callbacks.out_dir", str(out / "batches"),
            "--trainer.callbacks+=tests.helpers.host_reads.HostReadsToFile",
            "--trainer.callbacks.out_dir", str(out / "reads"),
        ),
        out / "logs",
    )  # fmt: skip
    _ok(nodes)
    return out


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _assert_same_end(run_dir: Path, reference: Path) -> None:
    """A resumed run ends exactly as the uninterrupted one: weights, best checkpoint, metrics."""
    for name in ("last.ckpt", "best.ckpt"):
        a = read_checkpoint(reference / "checkpoints" / name)
        b = read_checkpoint(run_dir / "checkpoints" / name)
        assert a["global_step"] == b["global_step"], name
        for key, weight in a["state_dict"].items():
            assert torch.equal(weight, b["state_dict"][key]), (name, key)
    done, expected = _summary(run_dir), _summary(reference)
    assert done["status"] == "completed"
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "best_val/acc", "global_step"):
        assert done[key] == expected[key], key
    assert (run_dir / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def test_two_nodes_out_of_step_match_one_process(uninterrupted, tmp_path):
    run_dir = uninterrupted / "run"
    summary = _summary(run_dir)
    assert summary["status"] == "completed" and summary["global_step"] == 16
    # one run directory, written by rank 0 only: no refusal by node 1, no error files
    assert not (run_dir / "errors").exists()
    assert (run_dir / "metrics.csv").read_text().count("epoch,step") == 1
    for name in ("node0.log", "node1.log"):
        assert "error:" not in (uninterrupted / "logs" / name).read_text()

    single = main(tiny_args(*PARITY, "--run.dir", str(tmp_path / "single"), steps=16))
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert summary[key] == pytest.approx(single[key], abs=TOLERANCE), key

    # every training sample exactly once per epoch across the two nodes
    points, _ = make_clusters(768, 32, 10, noise=1.6, seed=0)
    index_of = {tuple(row): i for i, row in enumerate(points[:512, :2].tolist())}
    seen = [json.loads((uninterrupted / "batches" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):
        per_rank = [[index_of[tuple(row)] for row in s[epoch]] for s in seen]
        assert len(per_rank[0]) == len(per_rank[1]) == 256
        assert sorted(per_rank[0] + per_rank[1]) == list(range(512))

    # no collective and no host read on a quiet step; the signal agreement is one all-reduce
    # on the logging steps (which read the host anyway)
    for rank in (0, 1):
        reads = json.loads((uninterrupted / "reads" / f"rank{rank}.json").read_text())
        assert len(reads["quiet"]) >= 6, reads
        noisy = {s: reads["per_step"][str(s)] for s in reads["quiet"] if reads["per_step"][str(s)]}
        assert not noisy, noisy
        logging_step = reads["per_step"]["4"]  # ends at global step 5: the agreement is due
        assert logging_step.get("dist.all_reduce") == 1, logging_step
        assert "dist.broadcast" not in logging_step  # Lightning's per-batch SIGTERM broadcast


def test_prediction_csv_is_identical_on_two_nodes(tmp_path):
    predict_csv(1, str(tmp_path / "one.csv"))
    nodes = torchrun_two_nodes(
        ["1", str(tmp_path / "two.csv")], tmp_path / "logs", module="tests.helpers.ddp_predict"
    )
    _ok(nodes)
    one = (tmp_path / "one.csv").read_bytes()
    assert one.count(b"\n") == 102 and (tmp_path / "two.csv").read_bytes() == one


def test_sigterm_on_one_node_stops_both_and_the_same_command_resumes(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    # only node 1 hears it, during step 9: both ranks agree at step 10 (the logging interval)
    nodes = torchrun_two_nodes(_two_node_args(run_dir, *_signal(1, 9)), tmp_path / "killed")
    for launched in nodes:  # torchrun reports its worker's exit status
        assert launched.returncode != 0 and EXIT_143.search(launched.output), launched.output
    assert "every rank stops after step 10" in nodes[0].output
    summary = _summary(run_dir)
    assert summary["status"] == "interrupted" and summary["global_step"] == 10
    assert read_checkpoint(summary["last_checkpoint"])["global_step"] == 10  # complete
    assert not (run_dir / "errors").exists()  # rank 1 stopped as agreed: nothing to report

    _ok(torchrun_two_nodes(_two_node_args(run_dir), tmp_path / "resumed"))
    _assert_same_end(run_dir, uninterrupted / "run")


def test_slurm_requeue_signal_checkpoints_requeues_and_the_job_continues(uninterrupted, tmp_path):
    bin_dir, asked = tmp_path / "bin", tmp_path / "scontrol.log"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # stands in for SLURM's: records what it is asked
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {asked}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    run_dir = tmp_path / "runs" / "4242"  # --run.dir .../$SLURM_JOB_ID, as in the README

    # Task 1 starts only once rank 0 has written summary.json: it must follow rank 0's
    # decision, not refuse the directory as someone else's (the start-up race, made certain).
    # SIGUSR1 (#SBATCH --signal=SIGUSR1@90) reaches rank 0 during step 6, rank 1 during step 8.
    first = srun_two_tasks(
        _two_node_args(run_dir, *_signal(0, 6, "SIGUSR1"), *_signal(1, 8, "SIGUSR1")),
        tmp_path / "job", job_id="4242", bin_dir=bin_dir, after=run_dir / "summary.json",
    )  # fmt: skip
    assert [n.returncode for n in first] == [143, 143], first[1].output[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "interrupted" and summary["global_step"] == 10
    assert summary["requeue"] == "requeued SLURM job 4242"
    assert asked.read_text() == "requeue 4242\n"  # once, by rank 0, after the checkpoint
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 10
    assert not list(run_dir.rglob("hpc_ckpt_*"))  # Lightning's own requeue handler stayed off

    requeued = srun_two_tasks(
        _two_node_args(run_dir), tmp_path / "requeued", job_id="4242", bin_dir=bin_dir
    )
    _ok(requeued)
    _assert_same_end(run_dir, uninterrupted / "run")
    assert asked.read_text() == "requeue 4242\n"


def test_the_sbatch_script_runs_a_command_the_cli_accepts(tmp_path, capsys):
    bin_dir, recorded = tmp_path / "bin", tmp_path / "srun.args"
    bin_dir.mkdir()
    srun = bin_dir / "srun"  # stands in for SLURM's: records the command it would start
    srun.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {recorded}\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_ID": "777",
    }  # fmt: skip
    done = subprocess.run(
        ["bash", str(SBATCH), QUICK, "--trainer.max_steps", "5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    command = recorded.read_text().splitlines()
    assert command[:3] == ["python", "-m", "lightning_dl.fit"]
    with pytest.raises(SystemExit) as printed:
        LightningDLCLI(args=[*command[3:], "--print_config"])
    assert printed.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert (config["trainer"]["num_nodes"], str(config["trainer"]["devices"])) == (2, "4")
    assert config["run"]["dir"] == "runs/slurm/777" and config["run"]["auto_resume"] is True
    assert config["trainer"]["max_steps"] == 5  # the user's own arguments come last
