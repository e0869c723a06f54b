"""Experiment-tracking helpers (wandb offline runs, read back without a server)."""
