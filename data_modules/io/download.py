"""Fetch official dataset archives over HTTPS, verify their MD5, never leave partial files."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from data_modules.errors import ReportedError, UserInputError


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_verified(url: str, dest: Path, md5: str) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right MD5 is there; renamed into
    place only once the checksum matched, so a broken download never looks like a good file."""
    dest = Path(dest)
    if dest.exists():
        if md5sum(dest) == md5:
            return dest
        raise UserInputError(
            f"{dest} exists but its MD5 is {md5sum(dest)}, expected {md5}; "
            "delete it to download it again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        got = md5sum(Path(tmp))
        if got != md5:
            raise ReportedError(
                f"download of {url} has MD5 {got}, expected {md5} (corrupted in transit or "
                "changed at the source); nothing was kept, try again"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def extract_tar(archive: Path, into: Path) -> None:
    """Unpack a tar archive with the 'data' filter: no absolute paths, links or devices."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
