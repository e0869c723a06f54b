"""The rendered demo corpus written in each course's file layout, so every format trains offline.

``*_ctc``: each run of equal frame phonemes once (eSpeak marks no boundary between them);
``*_chars``: the sentences spelt in capitals. Test labels are demo-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import corpus, features, phonemes

LAYOUTS = ("kaggle", "librispeech", "libriphone", "wsj_ctc", "librispeech_ctc", "wsj_chars")
LAYOUTS += ("librispeech_chars",)
CHARACTERS = tuple(sorted(" .0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))  # all the grammar spells
PARTITIONS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
LIBRISPEECH_CEPSTRA = 28
LIBRIPHONE_CEPSTRA = 13
SOS, EOS = "[SOS]", "[EOS]"
LIBRISPEECH = {  # per-utterance folder layouts: their transcripts' folder
    "librispeech": "transcript",
    "librispeech_ctc": "transcript",
    "librispeech_chars": "transcript/raw",
}
OBJECT_ARRAYS = {  # layouts of {prefix}{split}.npy object arrays: (prefix, labels' suffix)
    "kaggle": ("", "_labels"),
    "wsj_ctc": ("wsj0_", "_merged_labels"),
    "wsj_chars": ("", "_transcripts"),
}


def spelt(text: str) -> str:
    """A demo sentence as HW4P2 transcribes: capitals, no commas, no closing period."""
    return text.upper().replace(",", "").removesuffix(".")


def phoneme_symbols() -> list[str]:
    """The demo's 46 phonemes as LibriSpeech HW1P2 names them (silence is ``[SIL]``)."""
    return ["[SIL]" if p == "SIL" else p for p in phonemes.PHONEMES]


def inventory(layout: str) -> dict:
    """What a corpus in ``layout`` holds: feature dimension, classes and their symbols."""
    from data_modules.speech.checks import Inventory
    from data_modules.speech.layouts.phoneme_codes import LIBRISPEECH_CODES, WSJ_CODES, codes_for

    n = len(phonemes.PHONEMES)
    if layout == "kaggle":
        found = Inventory(layout, features.N_MELS, phonemes.NUM_CLASSES)
    elif layout == "librispeech":
        found = Inventory(layout, LIBRISPEECH_CEPSTRA, n, tuple(phoneme_symbols()))
    elif layout == "libriphone":
        found = Inventory(layout, 3 * LIBRIPHONE_CEPSTRA, n)
    elif layout == "wsj_ctc":
        found = Inventory("wsj", features.N_MELS, n, phonemes.PHONEMES, WSJ_CODES)
    elif layout in ("wsj_chars", "librispeech_chars"):
        dim = features.N_MELS if layout == "wsj_chars" else LIBRISPEECH_CEPSTRA
        found = Inventory(layout, dim, len(CHARACTERS), CHARACTERS, CHARACTERS)
    elif layout == "librispeech_ctc":
        symbols = tuple(sorted(phoneme_symbols()))
        codes = codes_for(symbols, LIBRISPEECH_CODES, "the demo corpus")
        found = Inventory("librispeech", LIBRISPEECH_CEPSTRA, n, symbols, codes)
    else:
        raise ValueError(f"unknown demo corpus layout {layout!r}; expected one of {LAYOUTS}")
    return found.to_state()


def phoneme_sequence(labels: np.ndarray) -> np.ndarray:
    """The phonemes of an utterance's frame labels, each run of equal phonemes once."""
    frame_phonemes = labels // phonemes.STATES
    starts = np.r_[True, frame_phonemes[1:] != frame_phonemes[:-1]]
    return frame_phonemes[starts]


def utterance_id(index: int) -> str:
    return f"demo-{index:06d}"


def test_order(n: int, seed: int) -> np.ndarray:
    """The order of test_split.txt: a seeded shuffle, so that file order is not sorted order."""
    return np.random.default_rng([seed, 11]).permutation(n)


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # per utterance, not per frame: a few thousand at most
        out[i] = item
    return out


def files(layout: str) -> list[str]:
    """Files (or folders) that a complete corpus in ``layout`` has."""
    if layout in OBJECT_ARRAYS:
        prefix, suffix = OBJECT_ARRAYS[layout]
        return [f"{prefix}{s}{part}.npy" for s in corpus.SPLITS for part in ("", suffix)]
    if layout in LIBRISPEECH:
        text = LIBRISPEECH[layout]
        return [f"{p}/{kind}" for p in PARTITIONS.values() for kind in ("mfcc", text)]
    return ["feat/train", "feat/test", "train_split.txt", "test_split.txt", "train_labels.txt",
            "test_labels.txt"]  # fmt: skip


def write(out: Path, layout: str, specs: list, results: list, seed: int) -> None:
    """Write rendered (frames, labels) of ``specs`` into the empty folder ``out``."""
    by_split = {s: [i for i, spec in enumerate(specs) if spec.split == s] for s in corpus.SPLITS}
    if layout in OBJECT_ARRAYS:
        prefix, suffix = OBJECT_ARRAYS[layout]
        for split, chosen in by_split.items():
            np.save(out / f"{prefix}{split}.npy", _object_array([results[i][0] for i in chosen]))
            if layout == "kaggle":
                labels = [results[i][1] for i in chosen]
            elif layout == "wsj_ctc":
                labels = [phoneme_sequence(results[i][1]) for i in chosen]
            else:
                labels = [np.array(spelt(specs[i].text).split(), dtype="S") for i in chosen]
            np.save(out / f"{prefix}{split}{suffix}.npy", _object_array(labels))
    elif layout in LIBRISPEECH:
        symbols = np.array(phoneme_symbols())
        text = LIBRISPEECH[layout]
        for split, chosen in by_split.items():
            part = out / PARTITIONS[split]
            (part / "mfcc").mkdir(parents=True)
            (part / text).mkdir(parents=True)
            for i in chosen:
                frames, labels = results[i]
                name = f"{utterance_id(specs[i].index)}.npy"
                np.save(part / "mfcc" / name, features.mfcc(frames, LIBRISPEECH_CEPSTRA))
                if layout == "librispeech_chars":
                    transcript = np.array(["<sos>", *spelt(specs[i].text), "<eos>"])
                elif layout == "librispeech_ctc":
                    transcript = np.concatenate([[SOS], symbols[phoneme_sequence(labels)], [EOS]])
                else:
                    transcript = np.concatenate([[SOS], symbols[labels // phonemes.STATES], [EOS]])
                np.save(part / text / name, transcript)
    elif layout == "libriphone":
        import torch  # only this layout writes torch files

        for split in ("train", "test"):
            feat = out / "feat" / split
            feat.mkdir(parents=True, exist_ok=True)
            chosen = by_split[split]
            if split == "test":
                chosen = [chosen[j] for j in test_order(len(chosen), seed)]
            lines, ids = [], []
            for i in chosen:
                frames, labels = results[i]
                ceps = features.mfcc(frames, LIBRIPHONE_CEPSTRA)
                d1 = features.deltas(ceps)
                x = np.concatenate([ceps, d1, features.deltas(d1)], axis=1)
                utt = utterance_id(specs[i].index)
                torch.save(torch.from_numpy(x), feat / f"{utt}.pt")
                ids.append(utt)
                lines.append(" ".join([utt, *map(str, (labels // phonemes.STATES).tolist())]))
            (out / f"{split}_split.txt").write_text("\n".join(ids) + "\n")
            (out / f"{split}_labels.txt").write_text("\n".join(lines) + "\n")
    else:
        raise ValueError(f"unknown demo corpus layout {layout!r}; expected one of {LAYOUTS}")
