"""Grid sweeps: every combination a run directory, finished ones skipped, results sorted."""

from __future__ import annotations

import csv
import json

import pytest

from lightning_dl.sweep import expand, load_grid, main
from tests.tiny_runs import QUICK

TINY = [
    "--data.num_train", "256", "--data.num_val", "64", "--data.num_test", "64",
    "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    "--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
    "--trainer.log_every_n_steps", "3", "--trainer.logger", "false",
]  # fmt: skip


def test_grid_expands_to_every_combination_and_rejects_bad_files(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "model.backbone.init_args.hidden: [[8], [16, 8]]\nmodel.lr: [0.1, 0.01, 0.001]\n"
    )
    combos = expand(load_grid(grid), tmp_path)
    assert len(combos) == 6
    assert combos[1].values == {"model.backbone.init_args.hidden": [8], "model.lr": 0.01}
    assert combos[1].overrides() == [
        "--model.backbone.init_args.hidden",
        "[8]",
        "--model.lr",
        "0.01",
    ]
    assert combos[3].run_dir.name == "003-hidden=16-8,lr=0.1"
    assert len({c.run_dir for c in combos}) == 6
    grid.write_text("model.lr: 0.1\n")
    with pytest.raises(ValueError, match="'model.lr' must map to a non-empty list"):
        load_grid(grid)


def test_sweep_runs_skips_finished_and_resumes_unfinished(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model.lr: [0.0001, 0.01]\nmodel.backbone.init_args.hidden: [[8]]\n")
    out = tmp_path / "sweep"
    args = ["--config", QUICK, "--grid", str(grid), "--out", str(out), "--workers", "2",
            "--metric", "val/acc", "--", *TINY]  # fmt: skip
    assert main(args) == 0

    runs = sorted(d for d in (out / "runs").iterdir() if not d.is_symlink())  # not runs/latest
    assert len(runs) == 2
    for run_dir in runs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["global_step"] == 6
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["model.lr"] for r in rows] == ["0.0001", "0.01"]
    assert [r["model.backbone.init_args.hidden"] for r in rows] == ["[8]", "[8]"]
    table = (out / "results.md").read_text().splitlines()[4:]
    accs = [float(line.split("|")[4]) for line in table]  # lr, hidden, best_val/acc, val/acc
    assert accs == sorted(accs, reverse=True) and len(accs) == 2
    assert accs[0] > accs[1]  # lr 0.01 learns in 6 steps, lr 1e-4 barely moves: order is real

    # Simulate a crash of one run after its last checkpoint: only that one runs again.
    crashed = runs[1]
    (crashed / "summary.json").write_text('{"status": "running"}')
    untouched = {r: (r / "summary.json").stat().st_mtime_ns for r in runs if r != crashed}
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished, skipped") == 1 and f"{crashed.name}: resuming" in printed
    assert json.loads((crashed / "summary.json").read_text())["status"] == "completed"
    assert all((r / "summary.json").stat().st_mtime_ns == t for r, t in untouched.items())
