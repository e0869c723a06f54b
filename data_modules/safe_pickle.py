"""Unpickling that rebuilds NumPy arrays and plain Python containers, and nothing else.

Dataset files such as CIFAR-10's batches are pickles; ``pickle.load`` on a file from the internet
runs whatever code the file names. This unpickler admits only the globals NumPy needs to rebuild
arrays, so a malicious file fails with an error instead of executing.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),
}


class UnsafePickleError(ValueError):
    """The pickle asked for a global outside the allow-list."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle global '{module}.{name}'; only NumPy arrays and "
            "plain containers are allowed in a dataset file"
        )


def safe_load(file: IO[bytes], source: str, encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` (named ``source`` in errors) allowing only NumPy array globals."""
    return _NumpyOnlyUnpickler(file, source, encoding=encoding).load()
