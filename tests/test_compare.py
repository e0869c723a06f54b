"""lightning_dl.compare: figure series are the runs' metrics.csv, labels the differing settings."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from data_modules.errors import run_main
from lightning_dl import compare

PRUNING = "lightning_dl.training.callbacks.optuna_pruning.OptunaPruning"


def _config(run_dir, hidden, lr, trial):
    """A config.yaml as the CLI writes it, with bookkeeping that differs in every run."""
    return {
        "seed_everything": 0,
        "trainer": {
            "max_steps": 40, "default_root_dir": str(run_dir),
            "logger": [{"class_path": "x.CSVLogger", "init_args": {"save_dir": str(run_dir)}}],
            "callbacks": [{"class_path": PRUNING, "init_args": {"trial_number": trial}}],
        },
        "model": {"class_path": "lightning_dl.tasks.classifier.Classifier", "init_args": {
            "backbone": {"class_path": "lightning_dl.models.mlp.MLP",
                         "init_args": {"hidden": hidden, "norm": "batchnorm"}},
            "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": lr}},
        }},
        "run": {"dir": str(run_dir), "auto_resume": True},
        "ckpt_path": None,
        "checkpoint": {"dirpath": str(run_dir / "checkpoints"), "monitor": "val/acc"},
    }  # fmt: skip


def _write_run(run_dir, hidden, lr, trial, slope):
    """metrics.csv laid out as Lightning's CSVLogger writes it (train rows, then val rows)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(
        "# pytorch_lightning==2.6.6\n" + yaml.safe_dump(_config(run_dir, hidden, lr, trial))
    )
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "test/acc", "train/acc", "train/loss", "val/acc",
                         "val/loss"])  # fmt: skip
        for step in range(9, 40, 10):
            writer.writerow([0, step, "", 0.5 + slope * step, 2 - slope * step, "", ""])
            writer.writerow([0, step, "", "", "", 0.4 + slope * step * (1 - step / 80),
                             2.2 - slope * step])  # fmt: skip
        writer.writerow([1, 40, 0.3 + slope, "", "", "", ""])
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "global_step": 40,
                                                      "test/acc": 0.3 + slope}))  # fmt: skip


def _runs(tmp_path):
    runs = tmp_path / "sweep" / "runs"
    _write_run(runs / "000-a", [8], 0.01, 0, 0.004)
    _write_run(runs / "001-b", [8], 0.001, 1, 0.001)
    _write_run(runs / "002-c", [64, 32], 0.01, 2, 0.006)
    (runs / "latest").symlink_to("002-c")
    return runs


def _csv_series(path):
    """The test's own reading of metrics.csv: column -> (steps, values) of non-empty cells."""
    series = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("epoch", "step") and value:
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(int(row["step"]))
                    values.append(float(value))
    return series


def test_figure_series_are_the_metrics_csv_and_labels_the_differing_settings(tmp_path):
    runs_dir = _runs(tmp_path)
    runs = compare.load_runs(compare.find_runs([tmp_path / "sweep"]))  # a sweep folder
    assert [r.path.name for r in runs] == ["000-a", "001-b", "002-c"]  # no runs/latest twice
    assert [r.label for r in runs] == ["hidden=[8], lr=0.01", "hidden=[8], lr=0.001",
                                       "hidden=[64, 32], lr=0.01"]  # fmt: skip
    fig = compare.comparison_figure(runs)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) == {"train/loss", "val/loss", "train/acc", "val/acc"}
    for key, ax in panels.items():
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {r.label for r in runs}
        for run in runs:  # metrics.csv numbers a training step's rows from 0; steps done here
            steps, values = _csv_series(runs_dir / run.path.name / "metrics.csv")[key]
            assert list(lines[run.label].get_xdata()) == [s + 1 for s in steps]
            assert list(lines[run.label].get_ydata()) == pytest.approx(values, rel=0, abs=0)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [r.label for r in runs]


def test_table_has_final_and_best_metrics_sorted_by_the_metric(tmp_path):
    runs = compare.load_runs(compare.find_runs([_runs(tmp_path)]))  # the runs/ folder itself
    table = compare.comparison_table(runs, "val/acc").splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[4:]]
    assert [r[0] for r in rows] == ["hidden=[64, 32], lr=0.01", "hidden=[8], lr=0.01",
                                    "hidden=[8], lr=0.001"]  # fmt: skip
    header = [c.strip() for c in table[2].strip("|").split("|")]
    best = {r[0]: dict(zip(header, r, strict=True)) for r in rows}["hidden=[8], lr=0.01"]
    val_acc = [0.4 + 0.004 * s * (1 - s / 80) for s in range(9, 40, 10)]
    assert float(best["best val/acc"]) == pytest.approx(max(val_acc), abs=5e-5)
    assert best["at step"] == "40" and best["steps"] == "40"  # the last validation: step 40
    assert float(best["val/acc"]) == pytest.approx(val_acc[-1], abs=5e-5)  # final = last logged
    assert float(best["train/loss"]) == pytest.approx(2 - 0.004 * 39, abs=5e-5)
    assert float(best["test/acc"]) == pytest.approx(0.304, abs=5e-5)
    by_loss = compare.comparison_table(runs, "val/loss").splitlines()[4]
    assert by_loss.startswith("| hidden=[64, 32], lr=0.01 |")  # lowest loss first


def test_command_writes_figure_and_table(tmp_path, capsys):
    runs = _runs(tmp_path)
    out = tmp_path / "figs" / "reg.png"
    args = [str(runs / "000-a"), str(runs / "002-c"), "--out", str(out), "--metric", "val/loss",
            "--title", "two runs"]  # fmt: skip
    assert compare.main(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "figs" / "reg.md").read_text()
    assert "best val/loss" in table and "| lr=0.01, hidden=[8]" not in table
    assert table.count("\n| ") == 3 and "hidden=[8]" in table  # header + 2 runs
    assert table in capsys.readouterr().out
    _write_run(tmp_path / "again", [8], 0.01, 7, 0.002)  # 000-a's settings, another trial
    same = compare.load_runs(
        compare.find_runs([runs / "000-a", runs / "000-a", tmp_path / "again"])
    )
    assert [r.label for r in same] == ["000-a", "again"]  # nothing differs: folder names


def _folder(path, files):
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)


@pytest.mark.parametrize(
    "name, files, message",
    [
        ("empty", {}, "empty: not a run directory (no metrics.csv or config.yaml) and holds no"),
        ("missing", None, "missing: no such run directory"),
        ("r", {"config.yaml": "a: 1\n"}, "r: run directory without metrics.csv"),
        ("m", {"metrics.csv": "epoch,step,lr\n0,1,2\n"},
         "metrics.csv: none of train/loss, val/loss, train/acc, val/acc is logged in it"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, name, files, message):
    if files is not None:
        _folder(tmp_path / name, files)
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: compare.main([str(tmp_path / name), "--out", str(tmp_path / "c.png")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "c.png").exists()


def test_unknown_metric_is_named(tmp_path, capsys):
    runs = _runs(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: compare.main([str(runs), "--metric", "val/f1", "--out",
                                       str(tmp_path / "c.png")]))  # fmt: skip
    assert exit_info.value.code == 2
    assert "--metric val/f1: no run logs it (logged: test/acc, train/acc" in capsys.readouterr().err


def test_tool_callbacks_name_the_pruning_callback():
    from lightning_dl.training.callbacks.optuna_pruning import OptunaPruning

    assert f"{OptunaPruning.__module__}.{OptunaPruning.__qualname__}" in compare.TOOL_CALLBACKS


def test_sequence_runs_are_compared_by_distance_lowest_first(tmp_path, capsys):
    """CTC and attention runs log val/dist and no accuracy: the panels, the columns and the
    default ranking are the distance's, lower first; a run's curves.png is drawn alike."""
    for name, end in (("far", 9.0), ("near", 2.0)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        with open(run_dir / "metrics.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["epoch", "step", "train/loss", "val/dist", "val/loss"])
            writer.writerows([[0, 9, 3.0, "", ""], [0, 9, "", 20.0, 2.5], [0, 19, "", end, 1.0]])
        (run_dir / "summary.json").write_text(json.dumps({"test/dist": end + 1}))
    out = str(tmp_path / "c.png")
    assert compare.main([str(tmp_path / "far"), str(tmp_path / "near"), "--out", out]) == 0
    table = (tmp_path / "c.md").read_text().splitlines()
    assert "best `val/dist`" in table[0] and "| val/dist |" in table[2] and "test/dist" in table[2]
    assert table[4].startswith("| near |") and "| 2.0000 |" in table[4]
    compare.plot_run(tmp_path / "near")
    assert (tmp_path / "near" / "curves.png").read_bytes()[:4] == b"\x89PNG"
