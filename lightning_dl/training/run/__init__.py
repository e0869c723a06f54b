"""Run plumbing: one directory per run (``<run.root>/<run.name>/<timestamp>/`` or ``--run.dir``)
with config.yaml (re-runnable), checkpoints/, metrics.csv, curves.png, summary.json, wandb/."""
