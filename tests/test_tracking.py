"""wandb details read back from the offline run: name, tags, full config, summary, log_model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightning_dl.fit import main
from tests.helpers.tiny_runs import tiny_args
from tests.helpers.wandb_offline import _payloads, read_offline_run


def _records(run: Path) -> dict[str, list]:
    """Protobuf records of an offline run, grouped by kind (run, artifact, ...)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = run.glob("run-*.wandb")
    kinds: dict[str, list] = {}
    for payload in _payloads(path.read_bytes(), path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        kinds.setdefault(kind, []).append(getattr(record, kind))
    return kinds


def test_name_tags_log_model_and_sync_command(tmp_path, capsys):
    logger = {
        "class_path": "pytorch_lightning.loggers.WandbLogger",
        "init_args": {"project": "p", "offline": False, "name": "my-run", "tags": ["a", "b"],
                      "log_model": True},
    }  # fmt: skip
    override = tmp_path / "wandb.yaml"
    override.write_text(yaml.safe_dump({"trainer": {"logger": [logger]}}))
    run_dir = tmp_path / "run"
    summary = main(tiny_args("--config", str(override), "--run.dir", str(run_dir), steps=10))
    (run,) = (run_dir / "wandb").glob("offline-run-*")
    assert f"wandb sync {run}" in capsys.readouterr().out

    info = _records(run)["run"][0]
    assert info.display_name == "my-run" and list(info.tags) == ["a", "b"]
    stored = read_offline_run(run)
    # the full resolved config, once: data/model/trainer sections, not model hparams again
    assert stored["config"]["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.003
    assert stored["config"]["trainer"]["max_steps"] == 10
    assert stored["config"]["run"]["dir"] == str(run_dir)
    assert "lr" not in stored["config"]  # hyper-parameters are not duplicated at the top level
    assert stored["summary"]["val/acc"] == pytest.approx(summary["val/acc"])
    assert stored["summary"]["status"] == "completed"
    artifacts = _records(run).get("artifact", [])
    assert any(a.type == "model" for a in artifacts)  # log_model: the checkpoint is logged


def test_default_wandb_name_is_the_run_directory(tmp_path):
    run_dir = tmp_path / "runs" / "quick" / "20260101-000000"
    main(tiny_args("--run.dir", str(run_dir), steps=2))
    (run,) = (run_dir / "wandb").glob("offline-run-*")
    assert _records(run)["run"][0].display_name == "quick/20260101-000000"
