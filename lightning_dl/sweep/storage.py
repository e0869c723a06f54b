"""Where a sweep's trials live: an Optuna storage named by a URL.

* ``sqlite:///PATH`` (the default: ``<sweep folder>/optuna.db``): one machine, any number of
  worker processes; a crashed sweep resumes from it.
* ``postgresql://...``, ``mysql+pymysql://...``: any SQLAlchemy URL Optuna's RDBStorage takes;
  workers on many machines share one database server.
* ``journal:PATH``: Optuna's JournalStorage in an append-only file, for several machines that
  share a filesystem (NFS) but no database server.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from data_modules.errors import UserInputError

JOURNAL = "journal:"
SQLITE_TIMEOUT_S = 60  # seconds a worker waits for another one's write instead of failing


def default_storage_url(sweep_dir: str | Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / 'optuna.db'}"


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage for ``url`` (see the module docstring); one clear line if it is bad."""
    if url.startswith(JOURNAL):
        path = Path(url.removeprefix(JOURNAL).removeprefix("//"))
        if not path.parent.is_dir():
            raise UserInputError(f"--storage {url}: folder {path.parent} does not exist")
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise UserInputError(
            f"--storage {url}: expected a URL: sqlite:///PATH, postgresql://..., mysql://... "
            "or journal:PATH"
        )
    engine_kwargs = {}
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[-1])
        if not path.parent.is_dir():
            raise UserInputError(f"--storage {url}: folder {path.parent} does not exist")
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except (ImportError, sqlalchemy.exc.SQLAlchemyError) as error:
        raise UserInputError(f"--storage {url}: cannot open it ({error})") from error
