"""Write files so that a crash never leaves a half-written one behind, and a full disk is named
(the free space is read while the partial temp file still takes its room)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from data_modules.errors import UserInputError, raise_if_disk_full, reported_if_disk_full


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``, which it replaces only if the block succeeds; a
    full disk is a :class:`~data_modules.errors.DiskFullError` naming ``dest``."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as error:
        raise_if_disk_full(error, dest)
        if error.errno in _NOT_WRITABLE:
            raise UserInputError(
                f"{dest}: cannot write into {dest.parent} ({error.strerror}); choose a folder "
                "that can be written"
            ) from error
        raise
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        with reported_if_disk_full(dest):  # while the partial file still fills the disk
            yield Path(tmp)
            os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENOENT)


def check_writable(folder: str | Path, what: str) -> None:
    """Raise :class:`~data_modules.errors.UserInputError` naming option ``what`` unless a file
    can be created in ``folder``: found before any work, not after it."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UserInputError(f"{what}: cannot write into {folder} ({reason})") from error
    os.close(fd)
    os.unlink(tmp)


def write_text_atomic(dest: str | Path, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def write_json_atomic(dest: str | Path, data: Any) -> None:
    """``data`` as indented JSON with a final newline, written atomically."""
    write_text_atomic(dest, json.dumps(data, indent=2) + "\n")


def point_symlink(link: str | Path, target: str | Path) -> None:
    """Make ``link`` a symlink to ``target`` (relative), replacing an older link atomically."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
