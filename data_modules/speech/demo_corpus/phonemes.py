"""eSpeak NG English phonemes -> a 46-phoneme ARPAbet-style inventory -> 138 frame classes.

46 as the Kaggle WSJ task, its six noise classes replaced by AX, IX, DX, EL, EN, Q; class =
3 * phoneme + the third the frame centre is in. An unknown mnemonic is an error, never a guess."""

from __future__ import annotations

import numpy as np

PHONEMES: tuple[str, ...] = (
    "SIL",
    "AA", "AE", "AH", "AO", "AW", "AX", "AY", "EH", "ER", "EY", "IH", "IX", "IY", "OW", "OY",
    "UH", "UW",
    "B", "CH", "D", "DH", "DX", "EL", "EN", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P",
    "Q", "R", "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
assert len(PHONEMES) == 46 and len(set(PHONEMES)) == 46
STATES = 3
NUM_CLASSES = len(PHONEMES) * STATES  # 138
SIL = PHONEMES.index("SIL")

# eSpeak NG 1.52 mnemonics of the English phoneme tables and the base consonants their rules use
_ESPEAK: dict[str, str] = {
    # vowels
    "@": "AX", "@2": "AX", "@5": "AX", "@-": "AX", "@#": "AX", "a#": "AX", "a#2": "AX",
    "3": "ER", "3:": "ER", "IR": "ER", "VR": "ER", "r-": "ER",
    "I": "IH", "I2": "IH", "I#": "IX", "I2#": "IX",
    "i": "IY", "i:": "IY", "i@": "IY", "i@3": "IY",
    "E": "EH", "E#": "EH", "E2": "EH", "e": "EH", "e@": "EH", "e#": "EH", "e:": "EY",
    "a": "AE", "a2": "AE", "aa": "AE", "a/": "AE",
    "A:": "AA", "A@": "AA", "A#": "AA", "A~": "AA", "0": "AA", "0#": "AA", "02": "AA",
    "O": "AO", "O:": "AO", "O2": "AO", "O@": "AO", "o@": "AO", "O~": "AO",
    "o": "OW", "o:": "OW", "oU": "OW", "oU#": "OW",
    "V": "AH", "U": "UH", "U@": "UH", "u": "UW", "u:": "UW",
    "aU": "AW", "aU@": "AW", "aI": "AY", "aI@": "AY", "aI2": "AY", "aI3": "AY",
    "eI": "EY", "OI": "OY",
    # syllabic consonants
    "@L": "EL", "l-": "EL", "n-": "EN", "m-": "M", "N-": "NG",
    # stops and affricates
    "p": "P", "b": "B", "t": "T", "t2": "T", "t[": "T", "d": "D", "d#": "D", "d[": "D",
    "t#": "DX", "k": "K", "g": "G", "?": "Q", "tS": "CH", "dZ": "JH",
    # fricatives
    "f": "F", "v": "V", "v#": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "z#": "Z",
    "z/2": "Z", "S": "SH", "Z": "ZH", "h": "HH", "x": "HH", "C": "HH",
    # nasals, liquids, glides (";" is eSpeak's j-like glide between vowels, as in "the agency")
    "m": "M", "n": "N", "N": "NG", "l": "L", "l/": "L", "l/2": "L", "l/3": "L", "L": "L",
    "r": "R", "r/": "R", "R": "R", "w": "W", "w#": "W", "j": "Y", ";": "Y",
}  # fmt: skip
_STRESS = "'," + "%="
# Stops and affricates whose eSpeak event comes after their silent closure.
CLOSURE_PHONEMES = frozenset(PHONEMES.index(p) for p in ("P", "B", "T", "D", "K", "G", "CH", "JH"))


class UnknownPhonemeError(ValueError):
    """eSpeak emitted a mnemonic this module does not map: extend `_ESPEAK`, do not guess."""


def to_phoneme_ids(mnemonics: list[str], context: str = "") -> np.ndarray:
    """Map eSpeak mnemonics (with stress marks) to inventory indices; pauses ('_', '_:') -> SIL."""
    ids = np.empty(len(mnemonics), dtype=np.int64)
    for i, raw in enumerate(mnemonics):
        name = raw.lstrip(_STRESS)
        if name.startswith("_") or name == "||":
            ids[i] = SIL
        elif name in _ESPEAK:
            ids[i] = PHONEMES.index(_ESPEAK[name])
        else:
            raise UnknownPhonemeError(
                f"eSpeak phoneme {raw!r} (event {i}) has no mapping in "
                f"data_modules/speech/demo_corpus/phonemes.py{': ' + context if context else ''}"
            )
    return ids


def move_closures_back(
    audio: np.ndarray, ids: np.ndarray, onsets: np.ndarray, max_samples: int
) -> np.ndarray:
    """Onsets of stops/affricates moved back to where the silence before them starts (at most
    ``max_samples``, never past the previous onset): eSpeak reports a stop at its burst, after a
    30-45 ms closure of zeros that would otherwise end the previous phoneme."""
    if len(onsets) < 2:
        return onsets.copy()
    positions = np.arange(len(audio))
    # For every sample, the index of the last non-zero sample at or before it (-1 if none).
    last_sound = np.maximum.accumulate(np.where(audio != 0, positions, -1))
    o = np.clip(onsets, 1, len(audio))
    silence_start = last_sound[o - 1] + 1
    lower = np.maximum(np.concatenate([[0], onsets[:-1] + 1]), onsets - max_samples)
    moved = np.maximum(silence_start, lower)
    is_stop = np.isin(ids, list(CLOSURE_PHONEMES)) & (onsets > 0)
    return np.where(is_stop, np.minimum(moved, onsets), onsets)


def frame_labels(
    ids: np.ndarray, starts: np.ndarray, speech_end: float, total: float, centres: np.ndarray
) -> np.ndarray:
    """Class (3*phoneme + state) of each frame centre (seconds) of an utterance ``total`` s long:
    phoneme i spans [starts[i], starts[i+1]), the last until ``speech_end``, the rest is silence."""
    ids = np.concatenate([[SIL], ids, [SIL]])
    starts = np.concatenate([[0.0], starts, [speech_end]])
    ends = np.concatenate([starts[1:], [total]])
    keep = ends > starts
    ids, starts, ends = ids[keep], starts[keep], ends[keep]
    first_of_run = np.concatenate([[True], (ids[1:] != SIL) | (ids[:-1] != SIL)])
    ids, starts = ids[first_of_run], starts[first_of_run]
    ends = np.concatenate([starts[1:], [total]])
    seg = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(ids) - 1)
    rel = (centres - starts[seg]) / (ends[seg] - starts[seg])
    state = np.clip((rel * STATES).astype(np.int64), 0, STATES - 1)
    return ids[seg] * STATES + state
