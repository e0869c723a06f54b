"""Tiny corpora in the later course layouts, written the way the course code reads them.

* LibriSpeech HW1P2 (2021 on): ``<partition>/mfcc/<utt>.npy`` float32 (T, D) and
  ``<partition>/transcript/<utt>.npy`` unicode arrays of T + 2 symbols, ``[SOS]`` ... ``[EOS]``.
* NTU ML2022 HW2 (libriphone): ``feat/{train,test}/<utt>.pt`` (torch.save of a (T, 39) tensor),
  ``train_split.txt`` / ``test_split.txt`` (ids, not sorted), ``train_labels.txt`` lines
  ``utt l1 ... lT``.

Each writer returns what it wrote, in the order the reader must give it back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PHONES = ("[SIL]", "AA", "AE", "B", "K", "SH")  # every one occurs in train-clean-100
PARTITIONS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}


def write_librispeech(
    root: Path,
    seed: int = 0,
    dim: int = 28,
    lengths: dict[str, tuple[int, ...]] | None = None,
    test_transcripts: bool = False,
) -> dict[str, tuple[list[np.ndarray], list[list[str]]]]:
    """{split: (frames, symbols per frame)}, utterances in sorted file-name order."""
    rng = np.random.default_rng(seed)
    lengths = lengths or {"train": (9, 4, 12, 30), "dev": (5, 7, 1), "test": (6, 3, 11)}
    written = {}
    for split, sizes in lengths.items():
        part = root / PARTITIONS[split]
        (part / "mfcc").mkdir(parents=True, exist_ok=True)
        names = sorted(f"{19 + 7 * j}-{198 - j}-{j:04d}.npy" for j in range(len(sizes)))
        frames, symbols = [], []
        for name, t in zip(names, sizes, strict=True):
            x = rng.normal(1.0, 2.0, size=(t, dim)).astype(np.float32)
            syms = [str(s) for s in rng.choice(PHONES, size=t)]
            np.save(part / "mfcc" / name, x)
            if split != "test" or test_transcripts:
                (part / "transcript").mkdir(exist_ok=True)
                np.save(part / "transcript" / name, np.array(["[SOS]", *syms, "[EOS]"]))
            frames.append(x)
            symbols.append(syms)
        if split == "train":  # the inventory comes from here: make it complete
            last = root / PARTITIONS[split] / "transcript" / names[-1]
            symbols[-1][: len(PHONES)] = PHONES
            np.save(last, np.array(["[SOS]", *symbols[-1], "[EOS]"]))
        written[split] = (frames, symbols)
    return written


def write_libriphone(
    root: Path,
    seed: int = 0,
    dim: int = 39,
    num_classes: int = 41,
    train: tuple[int, ...] = (8, 3, 20, 5, 11, 7, 9, 4, 6, 10),
    test: tuple[int, ...] = (6, 2, 13),
    test_labels: bool = False,
) -> dict[str, tuple[list[str], list[np.ndarray], list[np.ndarray]]]:
    """{"train"/"test": (ids in list order, frames, labels)}; the lists are not sorted."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, sizes in (("train", train), ("test", test)):
        folder = root / "feat" / split
        folder.mkdir(parents=True, exist_ok=True)
        ids = [f"{103 + 11 * ((j * 7) % len(sizes))}-1240-{j:04d}" for j in range(len(sizes))]
        frames, labels, lines = [], [], []
        for utt, t in zip(ids, sizes, strict=True):
            x = torch.randn(t, dim, generator=torch.Generator().manual_seed(seed * 1000 + t))
            y = rng.integers(0, num_classes, size=t)
            torch.save(x, folder / f"{utt}.pt")
            frames.append(x.numpy())
            labels.append(y)
            lines.append(" ".join([utt, *map(str, y.tolist())]))
        if split == "train":
            labels[2][:num_classes] = np.arange(num_classes)[: len(labels[2])]
            labels[2][-1] = num_classes - 1  # the classes come from the label file
            lines[2] = " ".join([ids[2], *map(str, labels[2].tolist())])
        (root / f"{split}_split.txt").write_text("\n".join(ids) + "\n")
        if split == "train" or test_labels:
            (root / f"{split}_labels.txt").write_text("\n".join(lines) + "\n")
        written[split] = (ids, frames, labels)
    return written
