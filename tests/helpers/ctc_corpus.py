"""Tiny utterance-level (HW3P2) corpora in the courses' file layouts, for tests.

Each phoneme has its own mean feature vector; an utterance is a sequence of phonemes, each held
for 3-5 frames, plus noise: learnable, and small enough for a few seconds of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_modules.speech.demo_corpus.layouts import _object_array

SYMBOLS = ("[SIL]", "AA", "B", "K", "S", "T")


def utterances(n: int, dim: int, seed: int, phonemes: int = len(SYMBOLS)):
    """``n`` (frames, phoneme sequence) pairs of ``dim`` features."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).normal(size=(phonemes, dim)) * 2
    out = []
    for _ in range(n):
        seq = rng.integers(0, phonemes, size=rng.integers(3, 8))
        seq = seq[np.r_[True, seq[1:] != seq[:-1]]]  # no equal neighbours
        frames = np.concatenate([np.repeat(means[p][None], rng.integers(3, 6), 0) for p in seq])
        frames = frames + rng.normal(scale=0.3, size=frames.shape)
        out.append((frames.astype(np.float32), seq.astype(np.int64)))
    return out


def write_wsj(root: Path, counts=(24, 6, 6), dim: int = 40, test_labels: bool = False) -> Path:
    """``wsj0_*.npy`` files (2019/2020 layout); phonemes are indices of the course's list."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate(zip(("train", "dev", "test"), counts, strict=True)):
        utts = utterances(n, dim, seed)
        np.save(root / f"wsj0_{split}.npy", _object_array([f for f, _ in utts]))
        if split != "test" or test_labels:
            labels = _object_array([s for _, s in utts])
            np.save(root / f"wsj0_{split}_merged_labels.npy", labels)
    return root


def write_librispeech(root: Path, counts=(24, 6, 6), dim: int = 28) -> Path:
    """``<partition>/mfcc`` + ``transcript`` (2021 on); test-clean has no transcripts."""
    parts = ("train-clean-100", "dev-clean", "test-clean")
    for seed, (part, n) in enumerate(zip(parts, counts, strict=True)):
        (root / part / "mfcc").mkdir(parents=True, exist_ok=True)
        if part != "test-clean":
            (root / part / "transcript").mkdir(exist_ok=True)
        for i, (frames, seq) in enumerate(utterances(n, dim, seed)):
            name = f"{1000 + 7 * (n - i)}-{i}.npy"  # sorted names differ from write order
            np.save(root / part / "mfcc" / name, frames)
            if part != "test-clean":
                symbols = np.array(["[SOS]", *[SYMBOLS[p] for p in seq], "[EOS]"])
                np.save(root / part / "transcript" / name, symbols)
    return root


WORDS = ("THE", "CAT", "SAT", "ON", "A", "MAT", "DOG'S")
CHARACTERS = tuple(sorted(set(" ".join(WORDS))))
CHAR_FOLDERS = {"raw": ("mfcc", "transcript/raw"), "plain": ("mfcc", "transcript")}
CHAR_FOLDERS |= {"transcripts": ("mfcc", "transcripts"), "text": ("fbank", "text")}


def sentences(n: int, dim: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """``n`` (frames, sentence) pairs: each character held 2-4 frames about its own mean."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(98).normal(size=(len(CHARACTERS), dim)) * 2
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS, size=rng.integers(1, 4)))
        index = [CHARACTERS.index(c) for c in text]
        frames = np.concatenate([np.repeat(means[c][None], rng.integers(2, 5), 0) for c in index])
        out.append(((frames + rng.normal(scale=0.3, size=frames.shape)).astype(np.float32), text))
    return out


def write_wsj_chars(root: Path, counts=(24, 6, 6), dim: int = 40) -> Path:
    """HW4P2 2019/2020: ``{split}.npy`` and ``{split}_transcripts.npy`` (byte-string words)."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate(zip(("train", "dev", "test"), counts, strict=True)):
        utts = sentences(n, dim, seed)
        np.save(root / f"{split}.npy", _object_array([f for f, _ in utts]))
        if split != "test":
            words = [np.array(text.split(), dtype="S") for _, text in utts]
            np.save(root / f"{split}_transcripts.npy", _object_array(words))
    return root


def write_librispeech_chars(
    root: Path, counts=(24, 6, 6), dim: int = 28, variant: str = "raw"
) -> Path:
    """HW4P2 from 2022: ``mfcc`` + ``transcript/raw`` (``raw``), ``transcripts`` or
    ``transcript`` (``plain``), characters within ``<sos>``/``<eos>``; ``text``: ``fbank``
    (F, T) + ``text`` of words."""
    features, texts = CHAR_FOLDERS[variant]
    parts = ("train-clean-100", "dev-clean", "test-clean")
    for seed, (part, n) in enumerate(zip(parts, counts, strict=True)):
        (root / part / features).mkdir(parents=True, exist_ok=True)
        if part != "test-clean":
            (root / part / texts).mkdir(parents=True, exist_ok=True)
        for i, (frames, text) in enumerate(sentences(n, dim, seed)):
            name = f"{2000 + 7 * (n - i)}-{i}.npy"
            np.save(root / part / features / name, frames.T if features == "fbank" else frames)
            if part != "test-clean":
                spelt = text.split() if variant == "text" else ["<sos>", *text, "<eos>"]
                np.save(root / part / texts / name, np.array(spelt))
    return root
