"""The search space of ``space.yaml``. Optuna stores only scalar choices, so a list or mapping
value is kept as its command-line text."""

from __future__ import annotations

import contextlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from data_modules.errors import InputFileNotFoundError, UserInputError
from lightning_dl.compare import flow


def cli_value(value: Any) -> str:
    """How ``value`` is written on a ``python -m lightning_dl.fit`` command line."""
    return value if isinstance(value, str) else flow(value)


def short(value: Any) -> str:
    """``value`` in a table cell or a folder name: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else cli_value(value)


@dataclass(frozen=True)
class Space:
    """Each key's Optuna distribution, and its values in file order where they are listed."""

    path: Path
    distributions: dict[str, BaseDistribution]
    lists: dict[str, tuple[Any, ...]]
    source: dict[str, Any]  # the file's content, as written

    @property
    def is_grid(self) -> bool:
        return len(self.lists) == len(self.distributions)

    def grid(self) -> dict[str, list[Any]]:  # for Optuna's GridSampler
        return {key: list(values) for key, values in self.lists.items()}

    def grid_size(self) -> int:
        return math.prod(map(len, self.lists.values()))

    def grid_position(self, values: dict[str, Any]) -> tuple[int, ...]:
        """Where ``values`` sits in the file's order (the last key varying fastest)."""
        return tuple(
            listed.index(values[key]) if values.get(key) in listed else len(listed)
            for key, listed in self.lists.items()
        )


def _distribution(where: str, spec: Any) -> tuple[BaseDistribution, tuple | None]:
    if isinstance(spec, list):
        if not spec:
            raise UserInputError(f"{where} must map to a non-empty list of values")
        scalar = (type(None), bool, int, float, str)
        values = tuple(v if isinstance(v, scalar) else cli_value(v) for v in spec)
        if len(set(map(repr, values))) != len(values):
            raise UserInputError(f"{where} lists a value twice: {spec!r}")
        return CategoricalDistribution(values), values
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        return _distribution(where, spec["choices"])[0], None
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"}:
        low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
        numbers = (low, high) if step is None else (low, high, step)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise UserInputError(f"{where}: low, high and step must be numbers, got {spec!r}")
        if not isinstance(log, bool):
            raise UserInputError(f"{where}: log must be true or false, got {log!r}")
        if not low < high:
            raise UserInputError(f"{where}: low must be below high, got {spec!r}")
        if log and (low <= 0 or step is not None):
            raise UserInputError(f"{where}: a log range needs low > 0 and no step, got {spec!r}")
        try:
            if all(isinstance(v, int) for v in numbers):
                return IntDistribution(low, high, log=log, step=step or 1), None
            return FloatDistribution(float(low), float(high), log=log, step=step), None
        except ValueError as error:
            raise UserInputError(f"{where}: {error}") from error
    raise UserInputError(
        f"{where}: expected a list of values, {{choices: [...]}} or {{low: L, high: H, log: "
        f"true|false}}, got {spec!r}"
    )


def load_space(path: str | Path) -> Space:
    """The space file as a :class:`Space`; one clear line naming the file and key otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"--space {path}: no such file")
    try:
        source = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserInputError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from error
    if not isinstance(source, dict) or not source:
        raise UserInputError(
            f"{path}: expected a mapping of dotted keys (model.backbone.init_args.hidden) to a "
            "list of values or a distribution"
        )
    distributions, lists = {}, {}
    for key, spec in source.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise UserInputError(f"{path}: key {key!r} is not a dotted command-line key")
        distributions[key], listed = _distribution(f"{path}: key '{key}'", spec)
        if listed is not None:
            lists[key] = listed
    return Space(path, distributions, lists, source)


def slug(values: dict[str, Any]) -> str:
    """``hidden=16-8,lr=0.001``: a readable, shell-safe folder name for a trial's values."""
    parts = [f"{k.split('.')[-1]}={re.sub(', ?', '-', short(v))}" for k, v in values.items()]
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "", ",".join(parts))[:120]


class _Parsed(Exception):
    """Raised once fit's arguments are parsed: the check needs no more of the CLI."""


def check_keys(configs: list[str], space: Space, extra: list[str]) -> None:
    """Refuse now a space that fit refuses (every trial would fail alike): fit parses the first
    point's command line, instantiating nothing, and gives the reason."""
    from lightning_dl.training.cli import LightningDLCLI  # Lightning: only once a sweep starts

    class ParseOnly(LightningDLCLI):
        def before_instantiate_classes(self) -> None:
            raise _Parsed

    args = [arg for config in configs for arg in ("--config", config)] + list(extra)
    for key, d in space.distributions.items():
        first = d.choices[0] if isinstance(d, CategoricalDistribution) else d.low
        args += [f"--{key}", cli_value(first)]
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
            f"--space {space.path}: fit refuses the first trial's command line: {reason}"
        ) from None
