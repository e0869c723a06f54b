"""Sample orders of millions of indices kept as one int32 tensor (4 bytes an index; a Python
list's ~36 make 650 MB for the Kaggle WSJ frames), handed out as Python ints in chunks."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

CHUNK = 1 << 16  # indices turned into Python ints at a time


def index_dtype(n: int) -> torch.dtype:
    """The smallest integer dtype that holds indices 0..n-1."""
    return torch.int32 if n < 2**31 else torch.int64


def in_chunks(indices: torch.Tensor, chunk: int | None = None) -> Iterator[int]:
    """The indices of a 1-D tensor as Python ints, ``chunk`` at a time, out of
    ``itertools.chain`` (C): a generator frame per index would cost ~100 us a batch of 1024."""
    chunk = chunk or CHUNK
    lists = (indices[start : start + chunk].tolist() for start in range(0, len(indices), chunk))
    return itertools.chain.from_iterable(lists)
