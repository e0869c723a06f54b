"""Run plumbing: one directory per run, what it holds, how a run stops, resumes and reports.

A run directory (``<run.root>/<run.name>/<timestamp>/``, or ``--run.dir``)::

    config.yaml          the fully resolved config (re-runnable with --config)
    checkpoints/         best.ckpt (by val/acc) and last.ckpt, written atomically
    metrics.csv          CSVLogger output;  curves.png drawn from it at the end
    summary.json         status (running / completed / failed / interrupted), error, figures
    wandb/               the wandb run (offline unless the config turns it on)

Modules: :mod:`.directory` (which directory, what it resumes from, several processes),
:mod:`.checkpoint_io` (atomic checkpoint writes), :mod:`.signals` (SIGTERM, Ctrl-C, SLURM's
requeue), :mod:`.summary` (summary.json, curves.png, the final table).
"""
