"""Every config in configs/ parses, instantiates and runs a few steps (fast_dev_run) on tiny files.

A new config whose DataModule has no entry in ``TINY_DATA`` fails here on purpose: register how
to build tiny files in its real format, so that no config goes untested.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lightning_dl.fit import main
from tests.helpers.ctc_corpus import write_librispeech
from tests.helpers.datafiles import write_cifar10, write_mnist
from tests.helpers.wsj_corpus import write_run_corpus

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))

TINY_DATA: dict[str, Callable[[Path], list[str]]] = {
    "data_modules.images.mnist.MNISTDataModule": lambda d: [
        "--data.data_dir",
        str(write_mnist(d / "mnist")),
        "--data.val_split",
        "16",
    ],
    "data_modules.images.cifar10.CIFAR10DataModule": lambda d: [
        "--data.data_dir",
        str(write_cifar10(d / "cifar")),
        "--data.val_split",
        "16",
    ],
    "data_modules.speech.frames.datamodule.SpeechFramesDataModule": lambda d: write_run_corpus(
        d / "wsj"
    ),
    "data_modules.speech.sequences.datamodule.UtteranceSequencesDataModule": lambda d: [
        "--data.data_dir",
        str(write_librispeech(d / "hw3p2")),
        "--data.source",
        "auto",
    ],
    "data_modules.synthetic.SyntheticClustersDataModule": lambda d: [
        "--data.num_train",
        "256",
        "--data.num_val",
        "64",
        "--data.num_test",
        "64",
    ],
}


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {
        "quickstart.yaml",
        "synthetic_mlp.yaml",
        "mnist_mlp.yaml",
        "cifar10_mlp.yaml",
        "wsj_mlp.yaml",
    }


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config: Path, tmp_path: Path):
    data_class = yaml.safe_load(config.read_text())["data"]["class_path"]
    assert data_class in TINY_DATA, f"{config.name}: register tiny files for {data_class}"
    args = ["--config", str(config), *TINY_DATA[data_class](tmp_path)]
    args += ["--trainer.fast_dev_run", "2", "--run.root", str(tmp_path / "runs")]
    args += ["--data.batch_size", "8", "--trainer.accelerator", "cpu"]
    if "seq2seq" in yaml.safe_load(config.read_text())["model"]["class_path"]:
        args += ["--model.ctc_weight", "0"]  # tiny utterances: too few frames for CTC at 4x
    summary = main(args)
    assert summary["global_step"] == 2
    if "test/dist" in summary:  # CTC: mean Levenshtein distance
        assert summary["test/dist"] >= 0.0
    else:
        assert 0.0 <= summary["test/acc"] <= 1.0


def _printed(capsys, *args: str) -> dict:
    """The config ``--print_config`` prints for ``args``."""
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


GPU_OVERRIDES = sorted((Path(__file__).parent.parent / "configs" / "gpu").glob("*.yaml"))


@pytest.mark.parametrize("override", GPU_OVERRIDES, ids=lambda p: p.name)
def test_gpu_overrides_merge_onto_their_base_config(override: Path, tmp_path: Path, capsys):
    base = override.parent.parent / override.name
    data_class = yaml.safe_load(base.read_text())["data"]["class_path"]
    args = ["--config", str(base), "--config", str(override), *TINY_DATA[data_class](tmp_path)]
    merged = _printed(capsys, *args)
    wanted = yaml.safe_load(override.read_text())
    assert merged["data"]["init_args"]["batch_size"] == wanted["data"]["init_args"]["batch_size"]
    lr = wanted["model"]["init_args"]["optimizer"]["init_args"]["lr"]
    assert merged["model"]["init_args"]["optimizer"]["init_args"]["lr"] == lr
    assert merged["model"]["init_args"]["lr_scheduler"]["init_args"]["max_lr"] == lr
    base_optimizer = yaml.safe_load(base.read_text())["model"]["init_args"]["optimizer"]
    assert merged["model"]["init_args"]["optimizer"]["class_path"] == base_optimizer["class_path"]


def test_an_old_full_form_recipe_resolves_as_its_short_form(capsys):
    """Recipes written before defaults.yaml (trainer, logger, seed in each) still mean the same."""
    old = _printed(
        capsys, "--config", str(Path(__file__).parent / "fixtures" / "old_quickstart.yaml")
    )
    new = _printed(capsys, "--config", str(CONFIGS[0].parent / "quickstart.yaml"))
    old["trainer"]["logger"][0]["init_args"]["tags"] = None  # the run name is the config stem
    old["data"]["class_path"] = old["data"]["class_path"].replace("WSJ", "Speech")  # an alias
    assert new["trainer"]["logger"][0]["init_args"]["offline"] is True
    for key in ("seed_everything", "trainer", "model", "data", "checkpoint"):
        assert old[key] == new[key], key
