"""One-time conversion of a frame-classification split into a memory-mappable cache entry:
``frames.npy`` (N, D), ``offsets.npy``, ``labels.npy`` and ``meta.json``, keyed by the sources,
settings and inventory; built in a temporary folder and renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_modules.errors import UserInputError, reported_if_disk_full
from data_modules.speech.checks import Inventory, SplitData
from data_modules.speech.layouts.frames import SplitSource, split_source

CACHE_VERSION = 3  # raised whenever an entry holds something new: older entries are rebuilt
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

    def inventory(self, fmt: str) -> Inventory:
        """The feature dimension and classes this entry's data defines (a training split's)."""
        return Inventory.from_state({**self.meta, "format": fmt})


_CONTENT_FILES = 4  # sources of up to this many files are fingerprinted by content samples


def _fingerprints(files: tuple[Path, ...]) -> list[dict]:
    """Content samples of a few large files; name, size and mtime of each of many small ones."""
    if len(files) <= _CONTENT_FILES:
        return [_fingerprint(p) for p in files]
    h = hashlib.sha256()
    for path in files:
        st = path.stat()
        h.update(f"{path.parent.name}/{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return [{"files": len(files), "stat_sha": h.hexdigest()}]


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


def inverse_std(var: np.ndarray | list[float]) -> np.ndarray:
    """``1 / sqrt(var + eps)`` as float32: the scale of every normalisation of the frames."""
    return (1.0 / np.sqrt(np.asarray(var, np.float64) + _EPS)).astype(np.float32)


def _utterance_normalize(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.float64)
    return (u - u.mean(axis=0)) / np.sqrt(u.var(axis=0) + _EPS)


def _write_frames(
    path: Path, utts: list, width: int, dtype: np.dtype, utterance_norm: bool, source: str
):
    """Stream utterances into one (N, D) ``.npy`` (no (N, D) array in memory, no dirty mmap
    pages); return the per-band sum and sum of squares of the raw frames."""
    n = sum(len(u) for u in utts)
    total, total_sq = np.zeros(width), np.zeros(width)
    with open(path, "wb") as f:
        descr = np.lib.format.dtype_to_descr(dtype)
        header = {"descr": descr, "fortran_order": False, "shape": (n, width)}
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
    tmp: Path, final: Path, data: SplitData, where: str, dtype: np.dtype, utterance_norm: bool
) -> dict:
    """Write an entry's arrays into ``tmp``; return its metadata (``final``: names in errors)."""
    utts, labs = data.frames, data.labels
    lengths = np.fromiter((len(u) for u in utts), dtype=np.int64, count=len(utts))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    width = data.feature_dim
    with reported_if_disk_full(final / "frames.npy"):
        total, total_sq = _write_frames(
            tmp / "frames.npy", utts, width, dtype, utterance_norm, where
        )
    with reported_if_disk_full(final / "offsets.npy"):
        np.save(tmp / "offsets.npy", offsets)
    label_dtype = np.dtype(np.uint8 if (data.num_classes or 0) <= 256 else np.uint16)
    if labs is not None:
        with reported_if_disk_full(final / "labels.npy"):
            np.save(tmp / "labels.npy", np.concatenate(labs).astype(label_dtype))
    mean = total / max(n, 1)
    var = np.maximum(total_sq / max(n, 1) - mean**2, 0.0)
    meta = {
        "n_frames": n,
        "n_utterances": len(utts),
        "feature_dim": width,
        "has_labels": labs is not None,
        "raw_mean": mean.tolist(),
        "raw_var": var.tolist(),
        "files": {p.name: p.stat().st_size for p in sorted(tmp.glob("*.npy"))},
    }
    if labs is not None:
        meta.update(num_classes=data.num_classes, label_dtype=label_dtype.name)
        meta["label_bytes"] = label_dtype.itemsize
    if data.symbols is not None:
        meta["symbols"] = list(data.symbols)
    return meta


def _checksum(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _expected_arrays(meta: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    n = meta["n_frames"]
    arrays = {
        "frames.npy": ((n, meta["feature_dim"]), np.dtype(meta["settings"]["dtype"])),
        "offsets.npy": ((meta["n_utterances"] + 1,), np.dtype(np.int64)),
    }
    if meta["has_labels"]:
        arrays["labels.npy"] = ((n,), np.dtype(meta["label_dtype"]))
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
    source: SplitSource | None = None,
    inventory: Inventory | None = None,
) -> CacheEntry:
    """The cache entry of ``split`` (read from ``source``, default the Kaggle files, with
    ``inventory``: None for the training split), converting the files only if needed."""
    data_dir = Path(data_dir)
    cache_root = Path(cache_dir) if cache_dir is not None else data_dir / ".wsj_cache"
    np_dtype = np.dtype(dtype)
    if np_dtype not in (np.float32, np.float16):
        raise UserInputError(f"dtype must be float32 or float16, got {dtype}")
    if source is None:
        source = split_source("kaggle", data_dir, split, need_labels)
    sources = _fingerprints(source.files)
    settings = {
        "version": CACHE_VERSION,
        "format": source.format,
        "split": split,
        "dtype": np_dtype.name,
        "utterance_norm": utterance_norm,
        "options": source.options,
        "inventory": inventory.to_state() if inventory is not None else None,
    }
    key = hashlib.sha256(json.dumps([settings, sources], sort_keys=True).encode()).hexdigest()
    # Entries sharing the prefix (source directory, split, settings) are older versions: deleted.
    source_id = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    prefix = f"{split}-{np_dtype.name}-{'utt' if utterance_norm else 'raw'}-{source_id}-"
    final = cache_root / f"{prefix}{key[:16]}"
    if final.exists():
        problem = entry_problem(final, key)
        if problem is None:
            return CacheEntry(final, json.loads((final / META).read_text()))
        warnings.warn(
            f"{final}: damaged WSJ cache entry ({problem}); rebuilding it from {source.where}",
            stacklevel=2,
        )

    created_root = not cache_root.exists()
    with reported_if_disk_full(cache_root):
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{prefix}", dir=cache_root))
    try:
        data = source.read(inventory)
        meta = _write_entry(tmp, final, data, source.where, np_dtype, utterance_norm)
        meta.update(key=key, settings=settings, sources=sources)
        meta["checksum"] = _checksum(meta)
        with reported_if_disk_full(final / META):
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
