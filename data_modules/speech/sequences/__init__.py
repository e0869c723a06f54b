"""Whole utterances and their phoneme sequences, for CTC."""
