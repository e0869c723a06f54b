"""The courses' phoneme inventories and the one-character codes their submissions are written in
(HW3P2 scores edit distance between such strings): the course's code where it has one, else the
next spare character (the demo's AX, IX; stress-marked vowels)."""

from __future__ import annotations

from collections.abc import Sequence

from data_modules.errors import UserInputError

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
# Printable ASCII that no course code uses, without quote, comma or backslash. New ones go at
# the end only: an inventory's codes, hence its submissions, must not change.
SPARE_CODES = "xqBFHJKLMNPQVX0123456789#$%&*<>=^|/:;!()+.?[]_{}~"


def codes_for(symbols: Sequence[str], known: dict[str, str], where: str) -> tuple[str, ...]:
    """One distinct printable character per symbol: the course's where it has one."""
    taken = {known[s] for s in symbols if s in known}
    spare = [c for c in SPARE_CODES if c not in taken]
    extra = [s for s in symbols if s not in known]
    if len(extra) > len(spare):
        raise UserInputError(
            f"{where}: {len(extra)} phoneme symbols without a code of the course "
            f"({', '.join(extra)}), more than the {len(spare)} spare one-character codes"
        )
    codes = dict(zip(extra, spare, strict=False))
    return tuple(known.get(s) or codes[s] for s in symbols)
