"""Experiment tracking: the CSV logger that a resumed run continues."""
