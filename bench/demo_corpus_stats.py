"""Label statistics of a built demo corpus: class coverage, majority-class rate, skipped states.

PYTHONPATH=. python bench/demo_corpus_stats.py /tmp/demo2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from data_modules.speech.demo_corpus import NUM_CLASSES, PHONEMES


def _segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each phoneme occurrence (new phoneme or state going back)."""
    phone, state = labels // 3, labels % 3
    new = np.concatenate([[True], (phone[1:] != phone[:-1]) | (state[1:] < state[:-1])])
    starts = np.flatnonzero(new)
    return starts, np.diff(np.concatenate([starts, [len(labels)]]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    print(
        f"{'split':5} {'utts':>5} {'frames':>8} {'classes':>8} {'phonemes':>8} "
        f"{'majority':>14} {'maj. rate':>9} {'<3 frames':>9}"
    )
    train_majority = None
    for split in ("train", "dev", "test"):
        # The generator's own output: trusted, so plain pickle loading is fine here.
        utterances = np.load(args.directory / f"{split}_labels.npy", allow_pickle=True)
        labels = np.concatenate(list(utterances))
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        train_majority = counts.argmax() if train_majority is None else train_majority
        _, lengths = _segments(labels)  # utterance edges are SIL on both sides: no false merges
        name = f"{PHONEMES[train_majority // 3]}/{train_majority % 3}"
        print(
            f"{split:5} {len(utterances):>5} {len(labels):>8} {np.count_nonzero(counts):>4}/138 "
            f"{len(np.unique(labels // 3)):>5}/46 {name:>14} "
            f"{counts[train_majority] / len(labels):>9.1%} {np.mean(lengths < 3):>9.1%}"
        )
    print(
        "majority = train's most frequent class; its rate on each split is the accuracy of "
        "always predicting it"
    )


if __name__ == "__main__":
    main()
