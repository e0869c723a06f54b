"""Sweeps on Optuna: ``python -m lightning_dl.sweep --config base.yaml --space space.yaml``.

``space.yaml`` maps dotted command-line keys to a list of values (a grid axis; today's
``grid.yaml`` files) or a distribution::

    model.backbone.init_args.hidden: [[64], [256], [1024]]        # a list: grid or choices
    model.backbone.init_args.dropout: {low: 0.0, high: 0.5}      # a float range
    data.init_args.batch_size: {choices: [64, 128, 256]}          # categorical

``--sampler grid`` (the default when every key lists values) tries every combination; ``random``
and ``tpe`` (the default otherwise) draw ``--n-trials`` points. Every trial is a normal run
directory ``<out>/runs/<NNN>-<key=value,...>`` trained by ``python -m lightning_dl.fit`` in a
subprocess, optimising ``--metric`` (a summary.json key, ``best_val/acc`` by default). With
``--pruner median|hyperband`` a trial whose logged ``val/...`` metric falls behind is stopped
early; it still tests its best checkpoint and writes its summary.json.

Trials live in an Optuna storage: by default ``<out>/optuna.db`` (SQLite), so re-running the same
command resumes a crashed sweep (runs that were cut off continue from their last checkpoint;
failed ones are retried) and ``--workers N`` trains N trials at once. Give every machine the
same ``--storage`` URL (``postgresql://...``, ``mysql://...``, or ``journal:/shared/sweep.log``
on a shared filesystem) and the same command, and they share the trials. After every trial
``results.csv``, ``results.md``, Optuna's plots and ``compare.png`` are rewritten in ``<out>``.

Arguments after ``--`` go to every run unchanged (``-- --trainer.max_steps 500``).
"""

from lightning_dl.sweep.command import main
from lightning_dl.sweep.space import load_space

__all__ = ["load_space", "main"]
