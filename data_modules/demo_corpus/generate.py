"""Render the demo corpus in parallel and write it in the Kaggle WSJ layout, atomically.

Files: train.npy, train_labels.npy, dev.npy, dev_labels.npy, test.npy (object arrays of per-
utterance float32 (T, 40) frames / int64 (T,) classes), test_labels.npy (demo only: the Kaggle
test set has no labels; it is here so predictions can be checked) and manifest.json, which
records the request so a later call can tell whether the corpus on disk is the one asked for.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lightning_dl.errors import UserInputError

from . import corpus, espeak, features, phonemes
from .utterance import UtteranceSpec, render

VERSION = 1
FORMAT = "lightning-dl demo corpus"
MANIFEST = "manifest.json"
FILES = tuple(f"{s}{part}.npy" for s in corpus.SPLITS for part in ("", "_labels"))
_CHUNK = 8  # utterances per task: amortises inter-process traffic
log = logging.getLogger(__name__)


def _render_chunk(specs: list[UtteranceSpec]) -> list[tuple[np.ndarray, np.ndarray]]:
    synth = espeak.synthesizer()  # one per process: the library has global state
    return [render(spec, synth) for spec in specs]


def _version() -> str:
    return espeak.synthesizer().version


def render_all(
    specs: list[UtteranceSpec], workers: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Rendered utterances in order, and the eSpeak NG version that made them.

    `workers` > 1 uses that many spawned processes; the result is the same.
    """
    chunks = [specs[i : i + _CHUNK] for i in range(0, len(specs), _CHUNK)]
    if workers <= 1:
        return [item for chunk in chunks for item in _render_chunk(chunk)], _version()
    # spawn, not fork: the caller may hold threads (torch, loaders) that fork would copy mid-state.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = [item for done in pool.map(_render_chunk, chunks) for item in done]
        return results, pool.submit(_version).result()


def check_voices(specs: list[UtteranceSpec]) -> None:
    """eSpeak silently ignores an unknown variant ('en+nobody' speaks as 'en'): refuse it here."""
    variant_dir = Path(espeak._load_espeakng_loader().get_data_path()) / "voices" / "!v"
    for variant in sorted({s.voice.partition("+")[2] for s in specs} - {""}):
        if not (variant_dir / variant).is_file():
            raise ValueError(f"eSpeak NG has no voice variant {variant!r} in {variant_dir}")


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # per utterance, not per frame: a few thousand at most
        out[i] = item
    return out


def _manifest(request: dict, specs: list[UtteranceSpec], results, version: str, seconds: float):
    splits = {}
    for split in corpus.SPLITS:
        chosen = [i for i, s in enumerate(specs) if s.split == split]
        splits[split] = {
            "utterances": len(chosen),
            "frames": int(sum(len(results[i][1]) for i in chosen)),
            "voices": sorted({specs[i].voice for i in chosen}),
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "request": request,
        "espeak_ng": version,
        "num_classes": phonemes.NUM_CLASSES,
        "feature_dim": features.N_MELS,
        "frames_per_second": features.SAMPLE_RATE // features.HOP,
        "phonemes": list(phonemes.PHONEMES),
        "class_of": "3 * phoneme index + state (0, 1, 2 = first, middle, last third)",
        "splits": splits,
        "files": list(FILES),
        "test_labels_note": "test_labels.npy is demo-only, for checking predictions; "
        "the Kaggle test set has no labels",
        "build_seconds": round(seconds, 2),
    }


def _write(out_dir: Path, specs, results, manifest: dict) -> None:
    """Write everything into a temporary sibling directory, then rename it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is ordinary data
        for split in corpus.SPLITS:
            chosen = [i for i, s in enumerate(specs) if s.split == split]
            np.save(tmp / f"{split}.npy", _object_array([results[i][0] for i in chosen]))
            np.save(tmp / f"{split}_labels.npy", _object_array([results[i][1] for i in chosen]))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out_dir.exists():  # an empty directory or a demo corpus the caller agreed to replace
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class DemoFolderTakenError(UserInputError, FileExistsError):
    """The demo corpus's folder holds something else; it is never touched."""


def _foreign_folder_message(out_dir: Path) -> str:
    """Why a non-empty folder that is no demo corpus is refused, and what to do instead."""
    kaggle = sorted(p.name for p in out_dir.glob("*.npy")) if out_dir.is_dir() else []
    if any(name in FILES for name in kaggle):
        return (
            f"{out_dir} holds Kaggle WSJ files ({', '.join(kaggle)}), not a demo corpus: "
            "--data.source kaggle (source: kaggle in a config) trains on them; to build the "
            "demo corpus, choose another --data.data_dir"
        )
    return (
        f"{out_dir} exists and is not a demo corpus (no {MANIFEST}); it is left as it is: "
        "choose another directory for the demo corpus"
    )


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The manifest of a demo corpus directory, or None if it is not one."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def corpus_matches(out_dir: str | os.PathLike, n_utterances: int, seed: int) -> bool:
    """True if `out_dir` holds a complete demo corpus built for exactly this request."""
    manifest = read_manifest(out_dir)
    return (
        manifest is not None
        and manifest.get("version") == VERSION
        and manifest.get("request") == {"n_utterances": n_utterances, "seed": seed}
        and all((Path(out_dir) / name).is_file() for name in FILES)
    )


def build_demo_corpus(
    out_dir: str | os.PathLike,
    n_utterances: int = 2000,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
) -> Path:
    """Build (or reuse) the eSpeak NG demo corpus in `out_dir` and return its path.

    An existing corpus made for the same (n_utterances, seed, version) is reused as is. A demo
    corpus made for another request is replaced only with `overwrite=True`; a non-empty
    directory that is not a demo corpus is never touched.
    """
    out_dir = Path(out_dir)
    if isinstance(n_utterances, bool) or not isinstance(n_utterances, int):
        raise UserInputError(f"n_utterances must be an int, got {n_utterances!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(f"seed must be a non-negative int, got {seed!r}")
    if workers < 1:
        raise UserInputError(f"workers must be >= 1, got {workers}")
    if corpus_matches(out_dir, n_utterances, seed):
        log.info("demo corpus in %s matches the request; reusing it", out_dir)
        return out_dir
    if out_dir.exists():
        existing = read_manifest(out_dir)
        if existing is None and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise DemoFolderTakenError(_foreign_folder_message(out_dir))
        if existing is not None and not overwrite:
            raise DemoFolderTakenError(
                f"{out_dir} holds a demo corpus built for {existing.get('request')} (version "
                f"{existing.get('version')}), not for n_utterances={n_utterances}, seed={seed} "
                f"(version {VERSION}); pass overwrite=True (CLI: --overwrite) to replace it"
            )
    specs = corpus.make_specs(n_utterances, seed)
    check_voices(specs)
    start = time.perf_counter()
    results, version = render_all(specs, workers)
    seconds = time.perf_counter() - start
    request = {"n_utterances": n_utterances, "seed": seed}
    _write(out_dir, specs, results, _manifest(request, specs, results, version, seconds))
    log.info("wrote demo corpus to %s in %.1f s", out_dir, seconds)
    return out_dir
