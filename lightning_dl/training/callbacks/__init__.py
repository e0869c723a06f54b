"""Callbacks the CLI adds to runs: exact resume, the non-finite loss guard, last.ckpt; and EMA."""
