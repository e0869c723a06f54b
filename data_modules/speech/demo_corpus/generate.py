"""Render the demo corpus in parallel and write it in a course's file layout, atomically; its
manifest.json records the request, so a later call can tell whether it is the one asked for."""

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

from data_modules.errors import UserInputError

from . import corpus, espeak, features, layouts, phonemes
from .utterance import UtteranceSpec, render

VERSION = 1
FORMAT = "lightning-dl demo corpus"
MANIFEST = "manifest.json"
FILES = tuple(layouts.files("kaggle"))  # the Kaggle layout's
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
    """Rendered utterances in order (the same for any ``workers``) and the eSpeak NG version."""
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


def _manifest(request: dict, specs: list[UtteranceSpec], results, version: str, seconds: float):
    layout = request.get("layout", "kaggle")
    splits = {}
    for split in corpus.SPLITS:
        chosen = [i for i, s in enumerate(specs) if s.split == split]
        splits[split] = {
            "utterances": len(chosen),
            "frames": int(sum(len(results[i][1]) for i in chosen)),
            "voices": sorted({specs[i].voice for i in chosen}),
        }
    inventory = layouts.inventory(layout)
    return {
        "format": FORMAT,
        "version": VERSION,
        "request": request,
        "layout": layout,
        "inventory": inventory,
        "espeak_ng": version,
        "num_classes": inventory["num_classes"],
        "feature_dim": inventory["feature_dim"],
        "frames_per_second": features.SAMPLE_RATE // features.HOP,
        "phonemes": list(phonemes.PHONEMES),
        "class_of": "3 * phoneme index + state (0, 1, 2 = first, middle, last third)"
        if layout == "kaggle"
        else "phoneme sequence of each utterance (runs of frame phonemes collapsed)"
        if layout.endswith("_ctc")
        else "phoneme index (a frame's phoneme; symbols in inventory for librispeech)",
        "splits": splits,
        "files": layouts.files(layout),
        "test_labels_note": "test labels are demo-only, for checking predictions; the "
        "courses' test sets have none",
        "build_seconds": round(seconds, 2),
    }


def _write(out_dir: Path, layout: str, seed: int, specs, results, manifest: dict) -> None:
    """Write everything into a temporary sibling directory, then rename it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is ordinary data
        layouts.write(tmp, layout, specs, results, seed)
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
    from data_modules.speech.checks import layout_of
    from data_modules.speech.layouts import frames  # the readers import torch

    found = layout_of(out_dir, frames.markers)
    if found is not None:
        layout, markers = found
        name = "Kaggle WSJ" if layout == "kaggle" else frames.COURSES.get(layout, layout)
        return (
            f"{out_dir} holds {name} files ({', '.join(markers)}), not a demo corpus: "
            f"--data.source {layout} (source: {layout} in a config) trains on them; to build "
            "the demo corpus, choose another --data.data_dir"
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


def _request(n_utterances: int, seed: int, layout: str) -> dict:
    request = {"n_utterances": n_utterances, "seed": seed}
    return request if layout == "kaggle" else {**request, "layout": layout}


def corpus_matches(
    out_dir: str | os.PathLike, n_utterances: int, seed: int, layout: str = "kaggle"
) -> bool:
    """True if `out_dir` holds a complete demo corpus built for exactly this request."""
    manifest = read_manifest(out_dir)
    return (
        manifest is not None
        and manifest.get("version") == VERSION
        and manifest.get("request") == _request(n_utterances, seed, layout)
        and all((Path(out_dir) / name).exists() for name in layouts.files(layout))
    )


def build_demo_corpus(
    out_dir: str | os.PathLike,
    n_utterances: int = 2000,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    layout: str = "kaggle",
) -> Path:
    """Build (or reuse: same request and version) the eSpeak NG demo corpus in ``out_dir``; one
    of another request is replaced only with ``overwrite``, a folder of other files never."""
    out_dir = Path(out_dir)
    if isinstance(n_utterances, bool) or not isinstance(n_utterances, int):
        raise UserInputError(f"n_utterances must be an int, got {n_utterances!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(f"seed must be a non-negative int, got {seed!r}")
    if workers < 1:
        raise UserInputError(f"workers must be >= 1, got {workers}")
    if layout not in layouts.LAYOUTS:
        raise UserInputError(f"layout must be one of {layouts.LAYOUTS}, got {layout!r}")
    if corpus_matches(out_dir, n_utterances, seed, layout):
        log.info("demo corpus in %s matches the request; reusing it", out_dir)
        return out_dir
    request = _request(n_utterances, seed, layout)
    if out_dir.exists():
        existing = read_manifest(out_dir)
        if existing is None and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise DemoFolderTakenError(_foreign_folder_message(out_dir))
        if existing is not None and not overwrite:
            raise DemoFolderTakenError(
                f"{out_dir} holds a demo corpus built for {existing.get('request')} (version "
                f"{existing.get('version')}), not for {request} (version {VERSION}); pass "
                "overwrite=True (CLI: --overwrite) to replace it, or choose another directory"
            )
    specs = corpus.make_specs(n_utterances, seed)
    check_voices(specs)
    start = time.perf_counter()
    results, version = render_all(specs, workers)
    seconds = time.perf_counter() - start
    manifest = _manifest(request, specs, results, version, seconds)
    _write(out_dir, layout, seed, specs, results, manifest)
    log.info("wrote demo corpus to %s in %.1f s", out_dir, seconds)
    return out_dir
