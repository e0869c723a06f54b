"""Unpickling that rebuilds NumPy arrays and plain Python containers, and nothing else: dataset
files (CIFAR-10, Kaggle WSJ) are downloaded pickles, which could otherwise run any code."""

from __future__ import annotations

import _codecs
import pickle
from typing import IO, Any

import numpy as np

from data_modules.errors import UserInputError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

# numpy 2.x pickles name ``numpy._core``, numpy 1.x ``numpy.core``: both map to the same objects
_REBUILD = {"_reconstruct": _multiarray._reconstruct, "scalar": _multiarray.scalar}
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (module, name): obj
        for module in ("numpy._core.multiarray", "numpy.core.multiarray")
        for name, obj in _REBUILD.items()
    },
    # pickle protocol 5 rebuilds contiguous arrays through _frombuffer (pure data, no code)
    **{
        (module, "_frombuffer"): _numeric._frombuffer
        for module in ("numpy._core.numeric", "numpy.core.numeric")
    },
    # protocol 2 (Python 3 writing for Python 2) stores bytes as _codecs.encode(str, "latin1")
    ("_codecs", "encode"): _codecs.encode,
}


class UnsafePickleError(pickle.UnpicklingError, UserInputError):
    """The pickle asked for something other than NumPy array reconstruction."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle global '{module}.{name}'; only NumPy array "
                "reconstruction is allowed in a dataset file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refusing persistent id {pid!r} in pickle")


def safe_load(file: IO[bytes], source: str, encoding: str = "latin1") -> Any:
    """Unpickle ``file`` (``source`` in errors) allowing only NumPy array globals (``latin1``:
    for Python 2 pickles such as CIFAR-10's)."""
    return _NumpyOnlyUnpickler(file, source, encoding).load()
