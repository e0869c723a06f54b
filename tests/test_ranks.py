"""Several processes, one run directory: rank 0 decides, the others follow and never refuse.

The two-node runs themselves are in tests/test_multinode.py; these are the decisions alone.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch.distributed as dist

from data_modules.errors import UserInputError
from lightning_dl.training.cli import LightningDLCLI
from lightning_dl.training.run.directory import SameRunOnEveryRank
from tests.helpers.tiny_runs import tiny_args
from tests.helpers.two_nodes import TWO_NODES


def _as_torchrun_rank(monkeypatch, rank: int) -> None:
    """What torchrun sets for global rank ``rank`` of two one-process nodes."""
    for key, value in {
        "RANK": str(rank), "GROUP_RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    for inherited in ("LIGHTNING_DL_RUN_DIR", "LIGHTNING_DL_CKPT_PATH"):
        monkeypatch.delenv(inherited, raising=False)


def test_a_late_node_follows_a_directory_rank_0_has_started(tmp_path, monkeypatch):
    """Node 1 starts after rank 0 wrote summary.json: it must not take the run for a stranger's."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "running"}))
    args = tiny_args(*TWO_NODES, "--run.dir", str(run_dir), "--trainer.logger", "false")

    _as_torchrun_rank(monkeypatch, 1)
    follower = LightningDLCLI(args=args)
    assert follower.config.run.dir == str(run_dir) and follower.config.ckpt_path is None
    assert sorted(p.name for p in run_dir.iterdir()) == ["summary.json"]  # nothing written

    _as_torchrun_rank(monkeypatch, 0)  # rank 0 itself checks: a directory with files is refused
    with pytest.raises(UserInputError, match="holds files"):
        LightningDLCLI(args=args)


def test_a_node_that_sees_another_checkpoint_stops_every_rank(monkeypatch):
    """SameRunOnEveryRank's verdict from what all_gather_object brings (one collective)."""
    seen = ["/shared/run/checkpoints/last.ckpt", None]  # node 1: a run directory not shared

    def all_gather_object(out: list, mine) -> None:
        out[:] = seen

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    trainer = SimpleNamespace(world_size=2)
    check = SameRunOnEveryRank("/shared/run", seen[0])
    with pytest.raises(UserInputError, match="rank 1 from nothing: every node must see the same"):
        check.setup(trainer, None, "fit")
    seen[1] = seen[0]
    check.setup(trainer, None, "fit")  # the same checkpoint everywhere: nothing to say
