"""Refuse, before the first trial, a space key or value that the configs do not take.

Each trial is ``python -m lightning_dl.fit`` with the space's values on its command line; a key
the configs do not have (the old grid runner's ``model.lr``, now ``model.optimizer.lr``) would
make every trial fail the same way. The fit command line of the first point of the space is
parsed here, in this process, as fit parses it (nothing is instantiated, nothing is written).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from data_modules.errors import UserInputError
from lightning_dl.sweep.space import Space, cli_value


class _Parsed(Exception):
    """Raised once fit's arguments are parsed: the sweep needs no more of the CLI."""


def first_values(space: Space) -> dict[str, Any]:
    """A point of the space: each key's first listed value, or the low end of its range."""
    values = {}
    for param in space.params:
        distribution = param.distribution
        choices = getattr(distribution, "choices", None)
        values[param.key] = choices[0] if choices is not None else distribution.low
    return values


def check_keys(configs: list[str], space: Space, space_path: str | Path, extra: list[str]) -> None:
    """Raise :class:`UserInputError` naming the space file if fit refuses the first point of
    ``space`` with ``configs`` and the arguments after ``--`` (``extra``); the reason is fit's
    own one line (:mod:`lightning_dl.training.config_errors`: the key, and the nearest one it
    takes)."""
    from lightning_dl.training.cli import (
        LightningDLCLI,  # Lightning: imported only when a sweep starts
    )

    class ParseOnly(LightningDLCLI):
        def before_instantiate_classes(self) -> None:
            raise _Parsed

    args = [arg for config in configs for arg in ("--config", config)] + list(extra)
    for key, value in first_values(space).items():
        args += [f"--{key}", cli_value(value)]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            ParseOnly(args=args)
    except _Parsed:
        return
    except SystemExit as error:  # the parser printed its one line
        lines = [line for line in printed.getvalue().splitlines() if line.startswith("error: ")]
        reason = lines[-1].removeprefix("error: ") if lines else f"exit status {error.code}"
        raise UserInputError(
            f"--space {space_path}: fit refuses the first trial's command line: {reason}"
        ) from None
