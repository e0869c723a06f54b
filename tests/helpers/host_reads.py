"""Count what makes the host wait for the device: tensor reads and collectives, step by step.

On CPU nothing really waits, but the same Python calls are what block on a GPU (``.item()``,
``.tolist()``, ``bool(t)``, ``float(t)``, ``.cpu()``, ``.numpy()``, and the strategy's
reduce/broadcast/barrier collectives), so counting them on CPU tests the GPU's hot loop.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

TENSOR_READS = (
    "item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__",
)  # fmt: skip
COLLECTIVES = ("reduce", "broadcast", "barrier", "reduce_boolean_decision", "all_gather")
# what Lightning's loops call on torch.distributed directly (e.g. the per-batch SIGTERM broadcast)
DIST_COLLECTIVES = (
    "broadcast", "all_reduce", "barrier", "all_gather", "all_gather_object",
    "broadcast_object_list",
)  # fmt: skip


@contextmanager
def counting_tensor_reads(counts: Counter) -> Iterator[Counter]:
    """Count calls of the tensor methods in TENSOR_READS (on any tensor) into ``counts``."""
    originals = {name: getattr(torch.Tensor, name) for name in TENSOR_READS}

    def counted(name: str, original: Any) -> Any:
        def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name, original in originals.items():
        setattr(torch.Tensor, name, counted(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@contextmanager
def counting_dist_collectives(counts: Counter) -> Iterator[Counter]:
    """Count calls of the ``torch.distributed`` functions in DIST_COLLECTIVES into ``counts``."""
    dist = torch.distributed
    originals = {name: getattr(dist, name) for name in DIST_COLLECTIVES}

    def counted(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[f"dist.{name}"] += 1
            return original(*args, **kwargs)

        return wrapper

    for name, original in originals.items():
        setattr(dist, name, counted(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)


class HostReadsPerStep(Callback):
    """Reads and collectives of each training step, from one step's start to the next's.

    ``quiet`` lists the steps that neither logged, validated, checkpointed nor ended an epoch;
    ``per_step`` maps every step to what it counted.
    """

    def __init__(self, counts: Counter) -> None:
        self.counts = counts
        self.per_step: dict[int, Counter] = {}
        self.loud: set[int] = set()
        self._mark: Counter | None = None
        self._step = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        strategy = trainer.strategy
        for name in COLLECTIVES:
            original = getattr(strategy, name)

            def wrapper(*args: Any, _name: str = name, _original: Any = original, **kw: Any):
                self.counts[f"strategy.{_name}"] += 1
                return _original(*args, **kw)

            setattr(strategy, name, wrapper)

    def _close_step(self) -> None:
        if self._mark is not None:
            self.per_step[self._step] = self.counts - self._mark

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._close_step()
        self._step = trainer.global_step
        self._mark = Counter(self.counts)
        if trainer._logger_connector.should_update_logs:
            self.loud.add(self._step)
        if args[-1] == trainer.num_training_batches - 1:
            # the next epoch's loader draws its seed and permutation here: CPU tensors of the
            # DataLoader's own generator, which never wait for a device
            self.loud.add(self._step)

    def on_validation_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self.loud.add(self._step)

    def on_save_checkpoint(self, trainer: pl.Trainer, *args: Any) -> None:
        self.loud.add(self._step)

    def on_train_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self.loud.add(self._step)  # the last step ends training (checks, checkpoints)
        self._close_step()
        self._mark = None

    @property
    def quiet(self) -> list[int]:
        return sorted(step for step in self.per_step if step not in self.loud)


class HostReadsToFile(HostReadsPerStep):
    """:class:`HostReadsPerStep` for a run in other processes (``--trainer.callbacks+=``).

    Counts tensor reads and collectives (the strategy's and ``torch.distributed``'s) while
    fitting, and writes ``<out_dir>/rank<N>.json``: ``{"quiet": [steps], "per_step": {...}}``.
    """

    def __init__(self, out_dir: str) -> None:
        super().__init__(Counter())
        self.out_dir = Path(out_dir)
        self._counting = ExitStack()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)
            self._counting.enter_context(counting_tensor_reads(self.counts))
            self._counting.enter_context(counting_dist_collectives(self.counts))

    def on_train_end(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_end(trainer, *args)
        self._counting.close()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        report = {
            "quiet": self.quiet,
            "per_step": {step: dict(c) for step, c in self.per_step.items()},
        }
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))
