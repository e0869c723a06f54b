"""Offline demo corpus: eSpeak NG (GPL-3) speaks generated business-news sentences with many
voices, its phoneme events giving frame labels. eSpeak is an optional extra, needed only to build
the corpus (`pip install -e ".[demo]"`), not to import this package."""

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
