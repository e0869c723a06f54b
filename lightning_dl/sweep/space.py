"""The search space of a sweep, read from ``space.yaml``: dotted CLI keys mapped to

* a list of values: a grid axis (today's ``grid.yaml`` files), or the choices of a categorical
  parameter for the random and TPE samplers;
* ``{choices: [...]}``: a categorical parameter;
* ``{low: L, high: H, log: bool, step: S}``: a float range, or an int range when L and H are
  both integers (``log`` and ``step`` optional).

Optuna stores categorical choices only as None, bool, int, float or str, so a choice that is a
list or a mapping (``hidden: [[64], [256, 128]]``) is stored as its command-line text
(``"[256, 128]"``), which is exactly what the run is given.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from data_modules.errors import InputFileNotFoundError, UserInputError

RANGE_KEYS = {"low", "high", "log", "step"}


def cli_value(value: Any) -> str:
    """How ``value`` is written on a ``python -m lightning_dl.fit`` command line."""
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _storable(value: Any) -> Any:
    """What Optuna can keep as a categorical choice: the value, or its command-line text."""
    scalar = value is None or isinstance(value, bool | int | float | str)
    return value if scalar else cli_value(value)


@dataclass(frozen=True)
class Param:
    """One dotted key of the space and its Optuna distribution."""

    key: str
    distribution: BaseDistribution
    grid: tuple[Any, ...] | None = None  # the values, in file order, when given as a list

    def suggest(self, trial: optuna.Trial) -> Any:
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return trial.suggest_categorical(self.key, d.choices)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(self.key, d.low, d.high, step=d.step, log=d.log)
        assert isinstance(d, FloatDistribution)
        return trial.suggest_float(self.key, d.low, d.high, step=d.step, log=d.log)


@dataclass(frozen=True)
class Space:
    params: tuple[Param, ...]
    source: dict[str, Any]  # the file's content, as written

    @property
    def is_grid(self) -> bool:
        return all(p.grid is not None for p in self.params)

    def grid(self) -> dict[str, list[Any]]:
        """{key: storable values}, for Optuna's GridSampler."""
        return {p.key: list(p.grid or ()) for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(p.grid or ()) for p in self.params)

    def grid_position(self, values: dict[str, Any]) -> tuple[int, ...]:
        """Where ``values`` sits in the file's order (the last key varying fastest)."""
        return tuple(
            p.grid.index(values[p.key])
            if p.grid and values.get(p.key) in p.grid
            else len(p.grid or ())
            for p in self.params
        )

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {p.key: p.suggest(trial) for p in self.params}

    def grid_points(self) -> list[dict[str, Any]]:
        keys = [p.key for p in self.params]
        return [
            dict(zip(keys, point, strict=True))
            for point in itertools.product(*(p.grid or () for p in self.params))
        ]


def _distribution(path: Path, key: str, spec: Any) -> tuple[BaseDistribution, tuple | None]:
    where = f"{path}: key '{key}'"
    if isinstance(spec, list):
        if not spec:
            raise UserInputError(f"{where} must map to a non-empty list of values")
        values = tuple(_storable(v) for v in spec)
        if len(set(map(repr, values))) != len(values):
            raise UserInputError(f"{where} lists a value twice: {spec!r}")
        return CategoricalDistribution(values), values
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        return _distribution(path, key, spec["choices"])[0], None
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= RANGE_KEYS:
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
    params = []
    for key, spec in source.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise UserInputError(f"{path}: key {key!r} is not a dotted command-line key")
        distribution, grid = _distribution(path, key, spec)
        params.append(Param(key, distribution, grid))
    return Space(tuple(params), source)


def slug(values: dict[str, Any]) -> str:
    """``hidden=16-8,lr=0.001``: a readable, shell-safe folder name for a trial's values."""
    parts = []
    for key, value in values.items():
        text = f"{value:.4g}" if isinstance(value, float) else cli_value(value)
        text = text.replace(", ", "-").replace(",", "-")
        parts.append(f"{key.split('.')[-1]}={text}")
    return re.sub(r"[^A-Za-z0-9._=,+-]+", "", ",".join(parts))[:120]
