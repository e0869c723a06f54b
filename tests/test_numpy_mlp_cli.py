"""The NumPy MLP's command line: training runs on tiny real-format files, its options, and bad
input reported as one ``error:`` line with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_modules.errors import InputFileNotFoundError, UserInputError, run_main
from data_modules.io.idx import read_idx
from lightning_dl.numpy_mlp.__main__ import main
from tests.helpers.datafiles import write_idx, write_mnist

QUICK = ["--hidden", "32", "--batch-size", "16", "--steps", "60", "--init-std", "0.01"]
QUICK += ["--val-fraction", "0.25", "--eval-every", "20"]


def test_cli_trains_on_tiny_mnist_files(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "--dataset",
        "mnist",
        "--data-dir",
        str(mnist_dir),
        "--hidden",
        "32",
        "--lr",
        "0.1",
        "--momentum",
        "0.9",
        "--batch-size",
        "16",
        "--steps",
        "60",
        "--init-std",
        "0.01",
        "--num-bn-layers",
        "1",
        "--val-fraction",
        "0.25",
        "--out-dir",
        str(out),
    ]
    metrics = main(args)
    printed = capsys.readouterr().out
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in printed
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "accuracy_curve.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 60 and len(saved["train_losses"]) == 20
    assert saved["eval_steps"] == [60]  # --eval-every 100 > 60 steps: measured after the last
    assert saved["selected_step"] == 60
    assert saved["test_accuracy"] == saved["last_step_test_accuracy"]
    every_20 = main([*args[:-2], "--out-dir", str(tmp_path / "e20"), "--eval-every", "20"])
    assert every_20["eval_steps"] == [20, 40, 60]
    errors = every_20["eval_val_errors"]
    assert every_20["selected_step"] == every_20["eval_steps"][errors.index(min(errors))]
    last = main(
        [*args[:-2], "--out-dir", str(tmp_path / "last"), "--eval-every", "20", "--select", "last"]
    )
    assert last["selected_step"] == 60
    assert last["test_accuracy"] == last["last_step_test_accuracy"]
    with pytest.raises(UserInputError, match="--overwrite"):
        main(args)
    by_epochs = main([*args[:-2], "--out-dir", str(tmp_path / "epochs"), "--epochs", "2"])
    assert by_epochs["steps"] == 2 * 3 and len(by_epochs["val_errors"]) == 2


def test_cli_missing_data_names_the_path_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputFileNotFoundError, match=r"MNIST data_dir .*nowhere does not exist"):
        main(["--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--out-dir", str(out)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileNotFoundError, match=r"train-images-idx3-ubyte.*not found"):
        main(["--dataset", "mnist", "--data-dir", str(tmp_path / "empty"), "--out-dir", str(out)])
    assert not out.exists()


@pytest.mark.parametrize(
    "options",
    [
        [
            "--activation",
            "gelu",
            "--preprocess",
            "standardize",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
        ],
        ["--activation", "gelu_tanh", "--optimizer", "adam", "--lr", "3e-3"],
        [
            "--optimizer",
            "adam",
            "--lr",
            "3e-3",
            "--num-bn-layers",
            "1",
            "--bn-running-var",
            "biased",
        ],
    ],
    ids=["gelu-sgd", "gelu_tanh-adam", "adam-bn-biased"],
)
def test_cli_activation_and_optimizer_options_learn(mnist_dir, tmp_path, options):
    out = tmp_path / "run"
    metrics = main(
        [
            "--dataset",
            "mnist",
            "--data-dir",
            str(mnist_dir),
            *QUICK,
            *options,
            "--out-dir",
            str(out),
        ]
    )
    assert metrics["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    saved = json.loads((out / "metrics.json").read_text())["args"]
    given = dict(zip(options[::2], options[1::2], strict=True))
    assert saved["activation"] == given.get("--activation", "relu")
    assert saved["optimizer"] == given.get("--optimizer", "sgd")


def test_cli_refuses_momentum_with_adam(mnist_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--dataset",
                "mnist",
                "--data-dir",
                str(mnist_dir),
                "--optimizer",
                "adam",
                "--momentum",
                "0.9",
            ]
        )
    assert exit_info.value.code == 2 and "--momentum is SGD's" in capsys.readouterr().err


def test_cli_takes_the_class_count_from_the_dataset(tmp_path):
    """A training split without the digit 9 still gives a 10-way head (the test set has 9s)."""
    root = write_mnist(tmp_path / "mnist")
    labels = read_idx(root / "train-labels-idx1-ubyte.gz")
    labels[labels == 9] = 8
    write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    assert 9 in read_idx(root / "t10k-labels-idx1-ubyte.gz")
    run = ["--dataset", "mnist", "--data-dir", str(root), *QUICK, "--preprocess", "standardize"]
    metrics = main([*run, "--lr", "0.05", "--momentum", "0.9", "--out-dir", str(tmp_path / "r")])
    assert metrics["test_accuracy"] > 0.5 and metrics["steps"] == 60


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr().err


def test_bad_input_is_one_error_line_with_exit_status_2(mnist_dir, tmp_path, capsys):
    labels = mnist_dir / "train-labels-idx1-ubyte.gz"
    signed = np.zeros(64, np.int8)
    signed[5] = -1
    write_idx(labels, signed, type_code=0x09)
    base = ["--dataset", "mnist", "--data-dir", str(mnist_dir), "--out-dir", str(tmp_path / "r")]
    code, err = run_cli(base, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert str(labels) in err and "0x09 (signed byte), expected 0x08" in err
    code, err = run_cli([*base[:3], str(tmp_path / "nowhere"), *base[4:]], capsys)
    assert code == 2 and err.startswith(f"error: MNIST data_dir {tmp_path / 'nowhere'} does not")
    assert err.count("\n") == 1
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{}")
    write_mnist(mnist_dir)
    code, err = run_cli(base, capsys)
    assert code == 2 and "already holds ['metrics.json']; pass --overwrite" in err
    code, err = run_cli([*base, "--overwrite", "--batch-size", "100", "--steps", "1"], capsys)
    assert code == 2 and "--batch-size 100 exceeds the 58 training samples" in err
