"""Tiny WSJ-format corpora for tests: object arrays of utterances, written with numpy itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def object_array(items: list[np.ndarray]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # item-wise: equal shapes must not broadcast into a 2-D array
        arr[i] = item
    return arr


def make_split(rng: np.random.Generator, lengths: list[int]) -> tuple[list, list]:
    frames = [rng.normal(2.0, 3.0, size=(t, 40)).astype(np.float32) for t in lengths]
    labels = [rng.integers(0, 138, size=t).astype(np.int64) for t in lengths]
    return frames, labels


def save_split(data_dir: Path, split: str, frames: list, labels: list | None) -> None:
    np.save(data_dir / f"{split}.npy", object_array(frames), allow_pickle=True)
    if labels is not None:
        np.save(data_dir / f"{split}_labels.npy", object_array(labels), allow_pickle=True)


def write_corpus(
    data_dir: Path,
    seed: int = 0,
    train=(1, 2, 5, 30, 7),
    dev=(3, 1, 12),
    test=(4, 9, 1),
    test_labels: bool = False,
) -> dict[str, tuple[list, list]]:
    """Write train/dev/test files; short utterances (1, 2 frames) exercise both edges at once.

    The training labels include class 137, so the data has the 138 classes of WSJ."""
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    corpus = {}
    for split, lengths in (("train", train), ("dev", dev), ("test", test)):
        frames, labels = make_split(rng, list(lengths))
        if split == "train":  # the classes come from the training labels: all 138 of them
            labels[-1][-1] = 137
        save_split(data_dir, split, frames, labels if split != "test" or test_labels else None)
        corpus[split] = (frames, labels)
    return corpus


def write_run_corpus(data_dir: Path) -> list[str]:
    """A corpus for short training runs (130 train, 50 dev, 25 test frames) and the command-line
    arguments that point a WSJ config at it."""
    write_corpus(data_dir, train=(40, 60, 30), dev=(30, 20), test=(25,))
    return ["--data.data_dir", str(data_dir), "--data.source", "kaggle", "--data.num_workers", "0"]


def naive_windows(utterances: list[np.ndarray], k: int, pad: str) -> np.ndarray:
    """Reference: pad each utterance explicitly, then slice every window (B, (2k+1)*40)."""
    out = []
    for u in utterances:
        padded = np.pad(u, ((k, k), (0, 0)), mode="constant" if pad == "zero" else "edge")
        out.extend(padded[t : t + 2 * k + 1].reshape(-1) for t in range(len(u)))
    return np.stack(out)
