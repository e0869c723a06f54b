"""File locks that say whether a trial's worker is alive.

A worker holds an exclusive ``flock`` on ``<sweep>/locks/<run dir name>.lock`` for as long as
the trial runs, and hands the same open file to the trial's ``fit`` process, so the lock lasts while
either of them lives. The kernel drops it when both are gone, however they died (SIGKILL, power
loss; on NFSv4 when the dead machine's lease runs out), so a lock that can be taken marks a
trial whose worker is gone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def try_lock(path: Path) -> int | None:
    """An open file descriptor holding the lock on ``path`` (created if missing), or None if
    another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    os.close(fd)  # closing the last descriptor of the open file drops the flock


@contextmanager
def held(path: Path) -> Iterator[None]:
    """Wait for the lock on ``path`` and hold it for the block (short critical sections)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
