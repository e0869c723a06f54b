"""The training run: CLI, callbacks, run directory plumbing, console, precision."""
