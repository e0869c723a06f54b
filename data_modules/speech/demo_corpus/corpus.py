"""What the demo corpus contains: splits, voices and the recipe of every utterance (from
``(seed, index)`` alone). Dev and test voices never occur in training; echoing variants (m2,
f2-f5) are left out, as their reverb fills the stop closures phonemes.py relies on being silent."""

from __future__ import annotations

import numpy as np

from data_modules.errors import UserInputError

from .sentences import make_sentence
from .utterance import UtteranceSpec

SPLITS = ("train", "dev", "test")
ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)  # fmt: skip
VARIANTS = {
    "train": (
        "",
        "m1",
        "m3",
        "m4",
        "m5",
        "f1",
        "klatt",
        "klatt2",
        "Annie",
        "belinda",
        "Alex",
        "Michael",
    ),
    "dev": ("m6", "aunty", "klatt3"),
    "test": ("m7", "linda", "klatt4"),
}
HELD_OUT_FRACTION = 0.1  # of the utterances, for dev and for test each


def split_sizes(n_utterances: int) -> dict[str, int]:
    """Utterances per split: 10% dev, 10% test (at least one each), the rest train."""
    if n_utterances < 3:
        raise UserInputError(
            f"a demo corpus needs at least 3 utterances (one per split), got {n_utterances}"
        )
    held_out = max(1, int(round(n_utterances * HELD_OUT_FRACTION)))
    return {"train": n_utterances - 2 * held_out, "dev": held_out, "test": held_out}


def voice_name(accent: str, variant: str) -> str:
    return f"{accent}+{variant}" if variant else accent


def make_specs(n_utterances: int, seed: int) -> list[UtteranceSpec]:
    """Recipes of all utterances, train first, then dev, then test."""
    splits = np.repeat(SPLITS, list(split_sizes(n_utterances).values()))
    specs = []
    for index, split in enumerate(splits):
        rng = np.random.default_rng([seed, index, 2])
        variants = VARIANTS[str(split)]
        specs.append(UtteranceSpec(
            index=index,
            split=str(split),
            text=make_sentence(seed, index),
            voice=voice_name(ACCENTS[rng.integers(len(ACCENTS))],
                             variants[rng.integers(len(variants))]),
            rate=int(rng.integers(130, 211)),
            pitch=int(rng.integers(35, 66)),
            pitch_range=int(rng.integers(30, 81)),
            snr_db=round(float(rng.uniform(20, 50)), 2),
            gain_db=round(float(rng.uniform(-6, 6)), 2),
            lead_s=round(float(rng.uniform(0.1, 0.4)), 3),
            tail_s=round(float(rng.uniform(0.1, 0.3)), 3),
            seed=int(rng.integers(2**31 - 1)),
        ))  # fmt: skip
    return specs
