"""Offline demo corpus: synthetic English speech in the Kaggle WSJ frame-classification format.

eSpeak NG (GPL-3) speaks generated business-news sentences with many voices; its phoneme events
give frame labels (46 phonemes x 3 states = 138 classes). eSpeak is an optional extra, needed
only to build the corpus: `pip install -e ".[demo]"`. Importing this package does not need it."""

from .generate import FILES, build_demo_corpus, corpus_matches, read_manifest
from .phonemes import NUM_CLASSES, PHONEMES

__all__ = [
    "FILES",
    "NUM_CLASSES",
    "PHONEMES",
    "build_demo_corpus",
    "corpus_matches",
    "read_manifest",
]
