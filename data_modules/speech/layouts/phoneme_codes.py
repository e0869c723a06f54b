"""The courses' phoneme inventories and the one-character codes their submissions are written in.

CMU 11-785 HW3P2 scores a prediction as the Levenshtein distance between strings of one
character per phoneme. 2019/2020 (WSJ) label phonemes 0..45 in ``WSJ_PHONEMES`` order and code
them with ``WSJ_CODES`` (the course's ``phoneme_list.py``); 2021 on (LibriSpeech) names the
phonemes in the transcripts and codes them with ``LIBRISPEECH_CODES`` (the starter notebook's
``CMUdict_ARPAbet``). A symbol outside the course's map (the demo corpus has a few: AX, IX, DX,
EL, EN, Q) gets the first unused character of ``SPARE_CODES``, in inventory order, so every
inventory has distinct codes; the codes are kept in the checkpoint with the symbols.
"""

from __future__ import annotations

from collections.abc import Sequence

WSJ_PHONEMES: tuple[str, ...] = (
    "+BREATH+", "+COUGH+", "+NOISE+", "+SMACK+", "+UH+", "+UM+", "AA", "AE", "AH", "AO", "AW",
    "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M",
    "N", "NG", "OW", "OY", "P", "R", "S", "SH", "SIL", "T", "TH", "UH", "UW", "V", "W", "Y", "Z",
    "ZH",
)  # fmt: skip
WSJ_CODES: tuple[str, ...] = tuple("_+~!-@aAhowybcdDerEfgHiIjklmnGOYpRsS.tTuUvW?zZ")
assert len(WSJ_PHONEMES) == len(WSJ_CODES) == len(set(WSJ_CODES)) == 46

LIBRISPEECH_CODES: dict[str, str] = {
    "[SIL]": "-", "NG": "G", "F": "f", "M": "m", "AE": "@", "R": "r", "UW": "u", "N": "n",
    "IY": "i", "AW": "W", "V": "v", "UH": "U", "OW": "o", "AA": "a", "ER": "R", "HH": "h",
    "Z": "z", "K": "k", "CH": "C", "W": "w", "EY": "e", "ZH": "Z", "T": "t", "EH": "E", "Y": "y",
    "AH": "A", "B": "b", "P": "p", "TH": "T", "DH": "D", "AO": "c", "G": "g", "L": "l", "JH": "j",
    "OY": "O", "SH": "S", "D": "d", "AY": "Y", "S": "s", "IH": "I",
}  # fmt: skip
SPARE_CODES = "xqBFHJKLMNPQVX0123456789#$%&*<>=^|/:;"


def codes_for(symbols: Sequence[str], known: dict[str, str]) -> tuple[str, ...]:
    """One distinct printable character per symbol: the course's where it has one."""
    taken = {known[s] for s in symbols if s in known}
    spare = iter(c for c in SPARE_CODES if c not in taken)
    codes = []
    for symbol in symbols:
        if symbol in known:
            codes.append(known[symbol])
        else:
            try:
                codes.append(next(spare))
            except StopIteration:
                raise ValueError(f"more than {len(SPARE_CODES)} symbols without a code") from None
    return tuple(codes)
