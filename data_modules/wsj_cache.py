"""One-time conversion of a WSJ split into a memory-mappable cache.

A cache entry is a directory holding ``frames.npy`` (all frames concatenated, (N, 40) float32 or
float16), ``offsets.npy`` (int64, utterance u is frames[offsets[u]:offsets[u+1]]), ``labels.npy``
(uint8, when the split has labels) and ``meta.json`` (key, sizes, mean/var of the raw frames,
the byte size of every file, and a checksum of itself).
The entry's name carries a key over the sources' sizes, mtimes and head/tail bytes plus the
conversion settings, so a changed source or setting gives a new entry and an unchanged one is
reused. Entries are built in a temporary directory and renamed into place, so a crash never
leaves a half-written cache behind; an entry damaged afterwards (a truncated file, a garbled
``meta.json``) is found before use, by its file sizes, array headers and checksum, and rebuilt
with a warning. A full disk is reported as such, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_modules.wsj_files import N_FEATURES, read_split, split_files
from lightning_dl.errors import UserInputError, raise_if_disk_full

CACHE_VERSION = 2  # 2: meta.json records file sizes and its own checksum
META = "meta.json"
_SAMPLE_BYTES = 1 << 16
_EPS = 1e-6


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    meta: dict

    @property
    def has_labels(self) -> bool:
        return bool(self.meta["has_labels"])

    def open_frames(self) -> np.ndarray:
        """Read-only memory map: pages are shared between processes and loaded on demand."""
        return np.load(self.path / "frames.npy", mmap_mode="r")

    def open_labels(self) -> np.ndarray:
        return np.load(self.path / "labels.npy", mmap_mode="r")

    def offsets(self) -> np.ndarray:
        return np.load(self.path / "offsets.npy")


def _fingerprint(path: Path) -> dict:
    """Size, mtime and a hash of the first and last 64 KiB: cheap, and catches in-place edits."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_SAMPLE_BYTES))
        if st.st_size > _SAMPLE_BYTES:
            f.seek(max(_SAMPLE_BYTES, st.st_size - _SAMPLE_BYTES))
            h.update(f.read())
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha": h.hexdigest()}


def _utterance_normalize(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.float64)
    return (u - u.mean(axis=0)) / np.sqrt(u.var(axis=0) + _EPS)


@contextmanager
def _reported_if_disk_full(path: Path) -> Iterator[None]:
    """A write of ``path`` that fails on a full disk raises DiskFullError naming ``path``."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        raise_if_disk_full(error, path)
        raise


def _write_frames(path: Path, utts: list, dtype: np.dtype, utterance_norm: bool, source: Path):
    """Stream utterances into one (N, 40) ``.npy`` (no (N, 40) array in memory, no dirty mmap
    pages); return the per-band sum and sum of squares of the raw frames."""
    n = sum(len(u) for u in utts)
    total = np.zeros(N_FEATURES)
    total_sq = np.zeros(N_FEATURES)
    with open(path, "wb") as f:
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (n, N_FEATURES),
        }
        np.lib.format.write_array_header_1_0(f, header)
        for i, u in enumerate(utts):
            u64 = u.astype(np.float64)
            total += u64.sum(axis=0)
            total_sq += np.square(u64).sum(axis=0)
            out = (_utterance_normalize(u) if utterance_norm else u64).astype(dtype)
            if not np.isfinite(out).all():
                raise UserInputError(
                    f"{source}: utterance {i} overflows {dtype} "
                    f"(max |x| = {np.abs(u64).max():.3g}); use dtype: float32"
                )
            out.tofile(f)
    return total, total_sq


def _write_entry(
    tmp: Path,
    final: Path,
    frames_path: Path,
    labels_path: Path | None,
    dtype: np.dtype,
    utterance_norm: bool,
) -> dict:
    """Write an entry's arrays into ``tmp``; return its metadata (``final``: names in errors)."""
    utts, labs = read_split(frames_path, labels_path)
    lengths = np.fromiter((len(u) for u in utts), dtype=np.int64, count=len(utts))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    with _reported_if_disk_full(final / "frames.npy"):
        total, total_sq = _write_frames(
            tmp / "frames.npy", utts, dtype, utterance_norm, frames_path
        )
    with _reported_if_disk_full(final / "offsets.npy"):
        np.save(tmp / "offsets.npy", offsets)
    if labs is not None:
        with _reported_if_disk_full(final / "labels.npy"):
            np.save(tmp / "labels.npy", np.concatenate(labs).astype(np.uint8))
    mean = total / max(n, 1)
    var = np.maximum(total_sq / max(n, 1) - mean**2, 0.0)
    return {
        "n_frames": n,
        "n_utterances": len(utts),
        "has_labels": labs is not None,
        "raw_mean": mean.tolist(),
        "raw_var": var.tolist(),
        "files": {p.name: p.stat().st_size for p in sorted(tmp.glob("*.npy"))},
    }


def _checksum(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _expected_arrays(meta: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    n = meta["n_frames"]
    arrays = {
        "frames.npy": ((n, N_FEATURES), np.dtype(meta["settings"]["dtype"])),
        "offsets.npy": ((meta["n_utterances"] + 1,), np.dtype(np.int64)),
    }
    if meta["has_labels"]:
        arrays["labels.npy"] = ((n,), np.dtype(np.uint8))
    return arrays


def entry_problem(path: Path, key: str) -> str | None:
    """Why the entry in ``path`` cannot be used (None: it is sound), without reading its data."""
    try:
        meta = json.loads((path / META).read_text())
    except FileNotFoundError:
        return f"{META} is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{META} is unreadable ({error})"
    if not isinstance(meta, dict) or meta.get("checksum") != _checksum(meta):
        return f"{META} does not match its checksum"
    if meta.get("key") != key:
        return f"{META} was written for other sources or settings"
    try:
        arrays = _expected_arrays(meta)
        sizes = dict(meta["files"])
    except (KeyError, TypeError, ValueError) as error:
        return f"{META} lacks an entry ({error!r})"
    for name, (shape, dtype) in arrays.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != sizes.get(name):
            return f"{name} has {size:,} bytes, {META} says {sizes.get(name)}"
        try:
            array = np.load(file, mmap_mode="r")  # reads the header only
        except (OSError, ValueError, EOFError) as error:
            return f"{name} is unreadable ({error})"
        if array.shape != shape or array.dtype != dtype:
            return f"{name} holds {array.dtype} {array.shape}, expected {dtype} {shape}"
    return None


def build_or_load(
    data_dir: str | Path,
    split: str,
    *,
    cache_dir: str | Path | None = None,
    dtype: str = "float32",
    utterance_norm: bool = False,
    need_labels: bool = True,
) -> CacheEntry:
    """Return the cache entry for ``split``, converting the source files only if needed."""
    data_dir = Path(data_dir)
    cache_root = Path(cache_dir) if cache_dir is not None else data_dir / ".wsj_cache"
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.float32, np.float16):
        raise UserInputError(f"dtype must be float32 or float16, got {dtype}")
    frames_path, labels_path = split_files(data_dir, split, need_labels)
    sources = [_fingerprint(p) for p in (frames_path, labels_path) if p is not None]
    settings = {
        "version": CACHE_VERSION,
        "split": split,
        "dtype": np_dtype.name,
        "utterance_norm": utterance_norm,
    }
    key = hashlib.sha256(json.dumps([settings, sources], sort_keys=True).encode()).hexdigest()
    # The prefix names what an entry is for (one source directory, split and setting); entries
    # sharing it are older versions of the same sources and are deleted once a new one exists.
    source_id = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    prefix = f"{split}-{np_dtype.name}-{'utt' if utterance_norm else 'raw'}-{source_id}-"
    final = cache_root / f"{prefix}{key[:16]}"
    if final.exists():
        problem = entry_problem(final, key)
        if problem is None:
            return CacheEntry(final, json.loads((final / META).read_text()))
        warnings.warn(
            f"{final}: damaged WSJ cache entry ({problem}); rebuilding it from "
            f"{frames_path.parent}",
            stacklevel=2,
        )

    created_root = not cache_root.exists()
    with _reported_if_disk_full(cache_root):
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{prefix}", dir=cache_root))
    try:
        meta = _write_entry(tmp, final, frames_path, labels_path, np_dtype, utterance_norm)
        meta.update(key=key, settings=settings, sources=sources)
        meta["checksum"] = _checksum(meta)
        with _reported_if_disk_full(final / META):
            (tmp / META).write_text(json.dumps(meta, indent=1))
        if final.exists():  # a damaged entry, or a stale one with a colliding name prefix
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_root:  # leave no empty cache folder behind (unless another process uses it)
            with suppress(OSError):
                cache_root.rmdir()
        if final.exists() and entry_problem(final, key) is None:
            return CacheEntry(final, json.loads((final / META).read_text()))  # another won
        raise
    for old in cache_root.glob(f"{prefix}*"):  # entries for older versions of these sources
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return CacheEntry(final, meta)
