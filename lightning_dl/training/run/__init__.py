"""Run plumbing: one directory per run, what it holds, how a run stops, resumes and reports.

A run directory (``<run.root>/<run.name>/<timestamp>/``, or ``--run.dir``)::

    config.yaml          the fully resolved config (re-runnable with --config)
    checkpoints/         best.ckpt (by val/acc) and last.ckpt, written atomically
    metrics.csv          CSVLogger output;  curves.png drawn from it at the end
    summary.json         status (running / completed / failed / interrupted), error, figures
    wandb/               the wandb run (offline unless the config turns it on)

Modules: :mod:`.directory` (which directory, refusing to overwrite, the ``latest`` link, stale
temp files), :mod:`.resume` (what a directory can be resumed from), :mod:`.checkpoint_io`
(atomic checkpoint writes, clear errors for truncated files and full disks), :mod:`.ranks`
(several processes: global rank 0 decides the directory, the others follow), :mod:`.signals`
(SIGTERM and SLURM's requeue signal, agreed by all ranks: a checkpoint and exit status 143),
:mod:`.summary` (summary.json and the final table), :mod:`.curves` (curves.png).
"""
