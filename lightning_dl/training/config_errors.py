"""Config mistakes in one line: the key, the value given, what was expected; YAML by file:line:col.

jsonargparse reports a bad value inside a ``class_path`` as a dozen nested lines about Union
subtypes after the usage text; :class:`OneLineErrorParser` prints ``error:
--model.backbone.init_args.activation 'swish': expected one of relu, elu, ...`` and exits 2
(``LIGHTNING_DL_DEBUG=1``: jsonargparse's full message). An unknown key is named where it was
given, with the nearest accepted one: ``error: my.yaml:3:3: trainer.max_step is not an option;
did you mean max_steps?``. :func:`check_config_files` names a YAML syntax error's file:line:col.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import yaml
from pytorch_lightning.cli import LightningArgumentParser

from data_modules.errors import EXIT_BAD_INPUT, UserInputError, debug_requested

_GIVEN = re.compile(r"Given value: NestedArg\(key='(?P<key>[^']+)', val='(?P<val>[^']*)'\)")
_PARSER_KEY = re.compile(r'Parser key "(?P<key>[^"]+)"')
_LITERAL = re.compile(
    r"Expected a typing\.Literal\[(?P<choices>[^\]]*)\]\. Got value: (?P<got>[^.\n]*)"
)
_NO_ATTRIBUTE = re.compile(r"module '(?P<module>[^']+)' has no attribute '(?P<name>[^']+)'")
_REQUIRED = re.compile(r"the following arguments are required: (?P<names>[^.\n]+)")
_GROUP_KEY = re.compile(r"Group '(?P<group>[^']+)' does not accept option '(?P<key>[^']+)'")
_OPTION_KEY = re.compile(r"Option '(?P<key>[^']+)' is not accepted")
_LIST = re.compile(r"Expected a <class '(list|tuple)'>|Expected a typing\.(List|Sequence|Tuple)")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<option>--[\w.]+)")
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value",
    "Problem with given class_path",
)


def _reason(message: str) -> str | None:
    if found := _LITERAL.search(message):
        choices = ", ".join(c.strip().strip("'\"") for c in found["choices"].split(","))
        return f"{found['got'].strip()!r}: expected one of {choices}"
    if found := _NO_ATTRIBUTE.search(message):
        return f"no {found['name']!r} in module {found['module']!r}"
    if found := _REQUIRED.search(message):
        return f"missing required argument(s): {found['names'].strip()}"
    return None


def one_line(message: str) -> str:
    """jsonargparse's (possibly nested) error ``message`` as one line naming key and value."""
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    if len(lines) <= 1:
        return lines[0] if lines else message
    keys = _PARSER_KEY.findall(message)
    given = _GIVEN.search(message)
    key = keys[0] if keys else ""
    if given:
        key = f"{key}.{given['key']}" if key else given["key"]
    value = repr(given["val"]) if given else ""
    reason = _reason(message)
    if reason is None and given and _LIST.search(message):  # 256,128 for [256,128]
        reason = f"expected a list; write it as [{given['val'].strip('[]() ')}]"
    if reason is None:  # the deepest line that says something
        useful = [ln for ln in lines if not ln.startswith(_NOISE) and "Parser key" not in ln]
        reason = useful[-1] if useful else lines[-1]
    if value and not reason.startswith(value):  # show the value once
        reason = f"{value}: {reason}"
    return f"--{key} {reason}" if key else reason


class OneLineErrorParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are one line (see the module docstring)."""

    _given: list[str] | None = None  # the arguments parsed, for naming where a key came from
    _configs: list[Path] | None = None  # their config files (jsonargparse changes directory)

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("allow_abbrev", False)  # --trainer.max_step is a typo, not max_steps
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, *rest, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self._given = list(sys.argv[1:] if args is None else args)
        self._configs = [path.absolute() for path in config_paths(self._given)]
        return super().parse_args(args, *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if debug_requested() or not self.exit_on_error:
            super().error(message, ex)
        line = unknown_key(message, self, self._configs or [], self._given or [])
        sys.stderr.write(f"error: {line or one_line(message)}\n")
        self.exit(EXIT_BAD_INPUT)


def unknown_key(
    message: str, parser: LightningArgumentParser, configs: Sequence[Path], args: Sequence[str]
) -> str | None:
    """One line for a key nothing accepts: where it was given (the last of ``configs`` that has
    it, or ``args``) and the nearest accepted key; None for any other error."""
    if found := _UNRECOGNIZED.search(message):
        option = found["option"]
        options = [o for o in parser._option_string_actions if o.startswith("--")]
        return f"{option} is not an option{_did_you_mean(option, options)}"
    keys = _PARSER_KEY.findall(message)
    if found := _GROUP_KEY.search(message):
        path = [*found["group"].split("."), *found["key"].split(".")]
    elif found := _OPTION_KEY.search(message):
        path = [*(k for key in keys for k in key.split(".")), *found["key"].split(".")]
    else:
        return None
    path = [part for part in path if part != "init_args"]
    top = {a.dest.split(".")[0] for a in parser._actions}
    if path[0] not in top:  # the first level is the misspelt one ("trainr")
        path = path[:1]
    trees = _config_trees(configs)
    place, found = _where(trees, path, exact=True)
    given = [p for p in _option_paths(args) if _same_key_under(p, path)]
    if place is not None:
        path = found
    elif given:  # on the command line (jsonargparse's message may have lost levels)
        path = given[0]
    else:  # in a config, at a depth the message lost
        place, path = _where(trees, path, exact=False)
    enclosing = path[:-1]
    class_path = next(
        (v.value for _, t, _, v in reversed(trees) if t == [*enclosing, "class_path"]), None
    )
    if class_path and isinstance(class_path, str):  # a class's init_args: its parameters
        accepted = _parameters(class_path)
        what = f"{'.'.join(path)}: {class_path.rsplit('.', 1)[-1]} has no parameter {path[-1]!r}"
    else:
        prefix = ".".join(enclosing)
        start = f"{prefix}." if prefix else ""
        dests = [a.dest for a in parser._actions if a.dest.startswith(start)]
        accepted = [dest[len(start) :].split(".")[0] for dest in dests]
        what = f"{'.'.join(path)} is not an option"
    hint = _did_you_mean(path[-1], accepted)
    deeper = [t for _, t, _, _ in trees if _same_key_under(t, path)]
    if not hint and deeper:  # the key exists one level down (model.lr: model.optimizer.lr)
        hint = f"; did you mean {'.'.join(deeper[-1])}?"
    return f"{place + ': ' if place else '--'}{what}{hint}"


def _same_key_under(trail: list[str], path: list[str]) -> bool:
    """``trail`` ends in ``path``'s last key, under the levels above it in ``path``."""
    return trail[-1] == path[-1] and trail[: len(path) - 1] == path[:-1]


def _did_you_mean(word: str, accepted: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, sorted(set(accepted)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _parameters(class_path: str) -> list[str]:
    """The keyword parameters of a ``class_path``'s ``__init__``; [] if it cannot be looked at."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []


_Entry = tuple[Path, list[str], yaml.Node, yaml.Node]  # file, key path, key node, value node


def _option_paths(args: Sequence[str]) -> list[list[str]]:
    """The ``--a.b.c`` options in ``args`` as paths without ``init_args``, the last first."""
    options = [a[2:].split("=", 1)[0] for a in args if a.startswith("--") and "." in a]
    return [[k for k in o.split(".") if k != "init_args"] for o in reversed(options)]


def _config_trees(configs: Sequence[Path]) -> list[_Entry]:
    """Every mapping entry of the ``--config`` files, in order, its path without ``init_args``
    levels (which jsonargparse lets a config write or leave out)."""
    entries: list[_Entry] = []
    for config in configs:
        try:
            root = yaml.compose(config.read_text())
        except (OSError, yaml.YAMLError):
            continue
        entries += _walk(config, root, [])
    return entries


def _walk(config: Path, node: yaml.Node | None, trail: list[str]) -> list[_Entry]:
    if not isinstance(node, yaml.MappingNode):
        return []
    entries: list[_Entry] = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        here = trail if key.value == "init_args" else [*trail, key.value]
        if key.value != "init_args":
            entries.append((config, here, key, value))
        entries += _walk(config, value, here)
    return entries


def _where(trees: list[_Entry], path: list[str], exact: bool) -> tuple[str | None, list[str]]:
    """``file:line:col`` and full path of the last entry that sets ``path`` (not ``exact``: or
    its last key anywhere under ``path[:-1]``); (None, ``path``) if none does."""
    for config, trail, key, _ in reversed(trees):
        if trail == path or (not exact and _same_key_under(trail, path)):
            mark = key.start_mark
            return f"{config}:{mark.line + 1}:{mark.column + 1}", trail
    return None, path


def config_paths(args: Sequence[str]) -> list[Path]:
    """The files given with ``--config PATH``, ``--config=PATH`` or ``-c PATH``."""
    paths = []
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            paths.append(Path(args[i + 1]))
        elif arg.startswith("--config="):
            paths.append(Path(arg.split("=", 1)[1]))
    return paths


def check_config_files(args: Sequence[str]) -> None:
    """Raise :class:`UserInputError` for a missing config file or one that is not valid YAML."""
    for path in config_paths(args):
        if not path.is_file():
            continue  # jsonargparse reports a missing file clearly itself
        try:
            yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            what = error.problem or error.context or "invalid YAML"
            raise UserInputError(f"{where}: YAML syntax error: {what}") from error
        except yaml.YAMLError as error:
            raise UserInputError(f"{path}: YAML syntax error: {error}") from error
