"""Run plumbing: one directory per run (``<run.root>/<run.name>/<timestamp>/`` or ``--run.dir``)
holding config.yaml (re-runnable with --config), checkpoints/ (best.ckpt, last.ckpt),
metrics.csv and curves.png, summary.json (status, error, figures) and wandb/.
"""
