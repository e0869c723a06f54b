"""Errors a user can act on, reported as one line (``error: <message>``) instead of a traceback.

Through :func:`run_main`, a :class:`UserInputError` exits 2, as argparse does, a
:class:`ReportedError` 1; anything else is a bug and keeps its traceback (always with
``LIGHTNING_DL_DEBUG=1``). Imports nothing heavy."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a terminated job
DEBUG_ENV = "LIGHTNING_DL_DEBUG"
_NEARLY_FULL = 1 << 20  # bytes: a failed write with less free space than this hit a full disk


class ReportedError(Exception):
    """An expected failure whose message names the cause: printed as one line, exit status 1."""

    exit_code = EXIT_FAILED


class UserInputError(ReportedError, ValueError):
    """Bad input the user can fix, named with what was expected: one line, exit status 2."""

    exit_code = EXIT_BAD_INPUT


class InputFileNotFoundError(UserInputError, FileNotFoundError):
    """A file or folder that the user named, or that a data layout needs, does not exist."""


class DiskFullError(ReportedError, OSError):
    """A write failed because its filesystem is full; the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


def require_at_least(where: str, least: int, **values: int | None) -> None:
    """Raise :class:`UserInputError` naming the first of ``values`` below ``least`` (None:
    unset), e.g. "MNISTDataModule: batch_size=0, expected at least 1", not torch's traceback."""
    for name, value in values.items():
        if value is not None and value < least:
            raise UserInputError(f"{where}: {name}={value}, expected at least {least}")


def reported_cause(error: BaseException) -> ReportedError | None:
    """The :class:`ReportedError` that ``error`` was raised from (its cause or context chain),
    e.g. inside jsonargparse's "Does not validate against any of the Union subtypes"; or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ReportedError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def looks_like_full_disk(error: BaseException, path: str | Path) -> bool:
    """True when ``error``, raised while writing ``path``, came from a full filesystem: without
    ENOSPC (NumPy's short write, torch's "unexpected pos") the free space decides."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(error, OSError | RuntimeError):
        return False
    if isinstance(error, OSError) and error.errno is not None:
        return False  # it says what went wrong (a read-only mount also shows 0 bytes free)
    folder = Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def raise_if_disk_full(error: BaseException, path: str | Path) -> None:
    """Re-raise ``error`` as a :class:`DiskFullError` naming ``path`` if the disk is full."""
    if looks_like_full_disk(error, path):
        raise DiskFullError(
            errno.ENOSPC,
            f"{path}: the disk is full (no space left on its filesystem); nothing was replaced, "
            "free some space and run again",
        ) from error


@contextmanager
def reported_if_disk_full(path: str | Path) -> Iterator[None]:
    """A write of ``path`` in the block that fails on a full disk is a :class:`DiskFullError`."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        raise_if_disk_full(error, path)
        raise


def describe(error: BaseException) -> str:
    """The one line shown for ``error``."""
    return " ".join(str(error).split()) or type(error).__name__


def report(error: ReportedError) -> int:
    """Print ``error: <message>`` to stderr; return the exit status for it."""
    print(f"error: {describe(error)}", file=sys.stderr, flush=True)
    return error.exit_code


def close_process_group() -> None:
    """Destroy the default process group, if a DDP run opened one, before the interpreter exits:
    gloo threads left alive at exit sometimes abort the finished process (status -6)."""
    if "torch" not in sys.modules:  # nothing distributed ran
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_main(main: Callable[[], Any]) -> NoReturn:
    """Run a command-line ``main`` (its int result is the exit status) and exit 0, 1 or 2."""
    try:
        result = main()
    except ReportedError as error:
        if debug_requested():
            raise
        sys.exit(report(error))
    finally:
        close_process_group()
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK)
