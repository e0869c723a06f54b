"""What a sweep accepts and keeps before any trial trains: space files, the results table's
columns, bad command lines, a sweep folder's space, metric and direction, keys fit refuses."""

from __future__ import annotations

import json

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from data_modules.errors import InputFileNotFoundError, UserInputError, run_main
from lightning_dl.sweep import build, load_space, main, parser
from lightning_dl.sweep.space import slug
from tests.helpers.tiny_runs import HIDDEN, QUICK


def test_space_files_grid_and_distributions(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"{HIDDEN}: [[8], [16, 8]]\nmodel.backbone.init_args.dropout: [0.0, 0.1, 0.2]\n"
    )
    space = load_space(grid)
    assert space.is_grid and space.grid_size() == 6
    assert space.grid() == {
        HIDDEN: ["[8]", "[16, 8]"],
        "model.backbone.init_args.dropout": [0.0, 0.1, 0.2],
    }  # lists are kept as their command-line text
    point = {HIDDEN: "[16, 8]", "model.backbone.init_args.dropout": 0.1}
    assert space.grid_position(point) == (1, 1)
    assert slug({HIDDEN: "[16, 8]", "model.optimizer.lr": 0.00123456}) == "hidden=16-8,lr=0.001235"

    dists = tmp_path / "space.yaml"
    dists.write_text(
        "model.optimizer.lr: {low: 1.0e-4, high: 0.1, log: true}\n"
        "model.backbone.init_args.dropout: {low: 0.0, high: 0.5, step: 0.1}\n"
        "data.batch_size: {low: 32, high: 256, log: true}\n"
        f"{HIDDEN}: {{choices: [[64], [256, 128]]}}\n"
    )
    space = load_space(dists)
    assert not space.is_grid
    d = space.distributions
    assert d["model.optimizer.lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert d["model.backbone.init_args.dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert d["data.batch_size"] == IntDistribution(32, 256, log=True)
    assert d[HIDDEN] == CategoricalDistribution(["[64]", "[256, 128]"])

    bad = {
        f"{HIDDEN}: 8\n": f"key '{HIDDEN}': expected a list of values, {{choices",
        f"{HIDDEN}: []\n": "must map to a non-empty list of values",
        "a.b: {low: 1, high: 1}\n": "key 'a.b': low must be below high",
        "a.b: {low: 0.0, high: 1.0, log: true}\n": "a log range needs low > 0",
        "a.b: {low: 0, hi: 1}\n": "expected a list of values",
        "- 1\n": "expected a mapping of dotted keys",
        "a b: [1]\n": "key 'a b' is not a dotted command-line key",
        "a.b: [1, 1]\n": "lists a value twice",
    }
    for text, message in bad.items():
        grid.write_text(text)
        with pytest.raises(UserInputError, match=str(grid).replace(".", r"\.")) as error:
            load_space(grid)
        assert message in str(error.value), text
    with pytest.raises(InputFileNotFoundError, match="--space .*nope.yaml: no such file"):
        load_space(tmp_path / "nope.yaml")


def test_results_columns_follow_run_summary():
    from lightning_dl.sweep.results import METRICS
    from lightning_dl.training.run.summary import REPORTED_METRICS

    assert METRICS == REPORTED_METRICS


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--space", "SPACE", "--sampler", "grid"], "--sampler grid needs a list of values for "
         "every key; model.optimizer.lr given as a distribution"),
        (["--space", "SPACE"], "--n-trials is needed with --sampler tpe"),
        (["--space", "SPACE", "--n-trials", "2", "--storage", "nowhere"],
         "--storage nowhere: expected a URL"),
        (["--space", "SPACE", "--n-trials", "2", "--storage", "journal:/no/such/dir/j.log"],
         "--storage journal:/no/such/dir/j.log: folder /no/such/dir does not exist"),
        (["--space", "SPACE", "--n-trials", "2", "--metric", "wall_time_s"],
         "--pruner median: pruning watches a metric logged at validation"),
        (["--space", "nope.yaml"], "--space nope.yaml: no such file"),
    ],
)  # fmt: skip
def test_bad_command_lines_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    space = tmp_path / "space.yaml"
    space.write_text("model.optimizer.lr: {low: 1.0e-4, high: 0.1, log: true}\n")
    args = ["--config", QUICK, "--out", str(tmp_path / "out"),
            *(str(space) if a == "SPACE" else a for a in extra)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: main(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "runs").exists()


def test_a_sweep_folder_keeps_its_space_metric_and_direction(tmp_path):
    """Optuna keeps one search space per study; values of another metric would not compare."""
    first, other = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(f"{HIDDEN}: [[8], [16]]\n")
    other.write_text(f"{HIDDEN}: [[8], [32]]\n")

    def open_sweep(*args: str):
        given = ["--config", QUICK, "--out", str(tmp_path / "out"), *args]
        return build(parser().parse_args(given), []).open()

    sweep = open_sweep("--space", str(first))
    assert sweep.n_trials == 2 and sweep.pruner == "none" and sweep.direction == "maximize"
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["sampler"] == "_Grid"
    with pytest.raises(UserInputError, match="was started with another space"):
        open_sweep("--space", str(other))
    with pytest.raises(UserInputError, match="--metric val/loss: study 'out' .* optimises "
                       "'best_val/acc'"):  # fmt: skip
        open_sweep("--space", str(first), "--metric", "val/loss")
    with pytest.raises(UserInputError, match="--direction minimize: .* is to maximize"):
        open_sweep("--space", str(first), "--direction", "minimize")
    assert not (tmp_path / "out" / "runs").exists()  # nothing was trained


def test_a_space_key_the_configs_lack_is_refused_before_the_first_trial(tmp_path, capsys):
    old_grid = tmp_path / "grid.yaml"  # the old grid runner's example: model.lr is gone
    old_grid.write_text("model.lr: [0.001, 0.01]\n")
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: main(["--config", QUICK, "--grid", str(old_grid), "--out", str(out)]))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --space {old_grid}: fit refuses the first trial's command ")
    assert "--model.lr: Classifier has no parameter 'lr'; did you mean model.optimizer.lr?" in err
    assert not out.exists()  # no study, no trial
