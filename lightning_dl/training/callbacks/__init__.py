"""Callbacks the CLI adds to runs: exact resume, non-finite loss guard, periodic checkpoints."""
