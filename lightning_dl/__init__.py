"""Training: ``tasks/`` (LightningModules), ``models/`` and ``layers/`` (networks),
``training/`` (CLI, callbacks, run plumbing, console, precision), ``predict/``, ``sweep/``,
``numpy_mlp/``; ``fit`` and ``compare`` are the entry points."""

import data_modules  # noqa: F401  (installs the pre-re-layout module paths that checkpoints name)
