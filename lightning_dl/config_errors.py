"""Config mistakes in one line: the key, the value given, what was expected; YAML by file:line:col.

jsonargparse reports a bad value inside a ``class_path`` (an unknown activation, a misspelt
optimizer class) as a dozen nested lines about Union subtypes, after the whole usage text.
:class:`OneLineErrorParser` prints ``error: --model.backbone.init_args.activation 'swish':
expected one of relu, elu, ...`` instead and exits with status 2, as argparse does;
``LIGHTNING_DL_DEBUG=1`` gives jsonargparse's full message. :func:`check_config_files` reads
every ``--config`` file first, so a YAML syntax error names the file, line and column rather
than ``<unicode string>``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import yaml
from pytorch_lightning.cli import LightningArgumentParser

from lightning_dl.errors import EXIT_BAD_INPUT, UserInputError, debug_requested

_GIVEN = re.compile(r"Given value: NestedArg\(key='(?P<key>[^']+)', val='(?P<val>[^']*)'\)")
_PARSER_KEY = re.compile(r'Parser key "(?P<key>[^"]+)"')
_LITERAL = re.compile(
    r"Expected a typing\.Literal\[(?P<choices>[^\]]*)\]\. Got value: (?P<got>[^.]*)"
)
_NO_ATTRIBUTE = re.compile(r"module '(?P<module>[^']+)' has no attribute '(?P<name>[^']+)'")
_REQUIRED = re.compile(r"the following arguments are required: (?P<names>[^.\n]+)")
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
    if reason is None:  # the deepest line that says something
        useful = [
            line for line in lines if not line.startswith(_NOISE) and "Parser key" not in line
        ]
        reason = useful[-1] if useful else lines[-1]
    if value and not reason.startswith(value):  # show the value once
        reason = f"{value}: {reason}"
    return f"--{key} {reason}" if key else reason


class OneLineErrorParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors are one line (see the module docstring)."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if debug_requested() or not self.exit_on_error:
            super().error(message, ex)
        sys.stderr.write(f"error: {one_line(message)}\n")
        self.exit(EXIT_BAD_INPUT)


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
