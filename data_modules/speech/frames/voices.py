"""Who speaks each split of a frame corpus, when its layout tells: a classifier learns its
training voices far better than new ones, so a run reports how many dev and test voices training
heard (LibriSpeech names and the demo corpus tell; Kaggle WSJ does not)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

LIBRISPEECH_ID = re.compile(r"^(\d+)-\d+-\d+$")
DEMO_ID = re.compile(r"^demo-(\d+)$")
ID_SUFFIXES = (".npy", ".pt")


def _utterance_ids(files: Iterable[Path]) -> list[str]:
    """Utterance ids of a split's feature files (transcripts and lists left out)."""
    return [f.stem for f in files if f.suffix in ID_SUFFIXES and f.parent.name != "transcript"]


@lru_cache(maxsize=2)
def _demo_voices(n_utterances: int, seed: int) -> tuple[str, ...]:
    from data_modules.speech.demo_corpus.corpus import make_specs  # numpy only

    return tuple(spec.voice for spec in make_specs(n_utterances, seed))


def split_voices(files: Iterable[Path], split: str, manifest: dict | None) -> set[str] | None:
    """The voices (speakers) of a split read from ``files``, or None when nothing tells them."""
    ids = _utterance_ids(files)
    if ids and all(LIBRISPEECH_ID.match(i) for i in ids):
        return {LIBRISPEECH_ID.match(i).group(1) for i in ids}
    if manifest is None:
        return None
    if ids and all(DEMO_ID.match(i) for i in ids):
        request = manifest["request"]
        voices = _demo_voices(request["n_utterances"], request["seed"])
        return {voices[int(DEMO_ID.match(i).group(1))] for i in ids}
    voices = manifest.get("splits", {}).get(split, {}).get("voices")
    return set(voices) if voices is not None else None


def voices_report(voices: dict[str, set[str] | None]) -> dict | None:
    """``{"train": {"voices": n}, "dev": {"voices": n, "in_train": m}, ...}`` or None."""
    train = voices.get("train")
    if train is None:
        return None
    report: dict[str, dict[str, int]] = {"train": {"voices": len(train)}}
    for split, heard in voices.items():
        if split != "train" and heard is not None:
            report[split] = {"voices": len(heard), "in_train": len(heard & train)}
    return report
