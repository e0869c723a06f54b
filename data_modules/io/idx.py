"""Reader for the IDX format of MNIST: two zero bytes, a type code, the number of dimensions,
one big-endian uint32 per dimension, then the data in C order; optionally gzipped."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from data_modules.errors import UserInputError

IDX_TYPES = {  # type code: (name, dtype of the big-endian data)
    0x08: ("unsigned byte", np.dtype(np.uint8)),
    0x09: ("signed byte", np.dtype(np.int8)),
    0x0B: ("int16", np.dtype(">i2")),
    0x0C: ("int32", np.dtype(">i4")),
    0x0D: ("float32", np.dtype(">f4")),
    0x0E: ("float64", np.dtype(">f8")),
}


def describe_type(code: int) -> str:
    return f"0x{code:02x} ({IDX_TYPES[code][0]})"


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise UserInputError(
            f"{path}: cannot read the file ({err}); is it a complete gzip file?"
        ) from err


def read_idx(
    path: str | Path, expected_ndim: int | None = None, expected_type: int | None = None
) -> np.ndarray:
    """One IDX file (optionally ``.gz``) as a native-endian array; ``expected_type`` (0x08:
    unsigned bytes) rejects any other."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise UserInputError(f"{path}: file has {len(raw)} bytes, too short for an IDX header")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in IDX_TYPES:
        raise UserInputError(
            f"{path}: bad magic number 0x{raw[:4].hex()}; expected 0x0000TTDD with type TT in "
            f"{sorted(f'{k:02x}' for k in IDX_TYPES)} (e.g. 0x00000803 for images)"
        )
    if expected_type is not None and type_code != expected_type:
        raise UserInputError(
            f"{path}: IDX type {describe_type(type_code)}, expected {describe_type(expected_type)}"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise UserInputError(f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise UserInputError(f"{path}: truncated header, expected {header_end} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code][1]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no int64 overflow
    found = len(raw) - header_end
    if found != expected:
        raise UserInputError(
            f"{path}: header says shape {shape} ({expected} data bytes) but the file has "
            f"{found} data bytes; the file is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
