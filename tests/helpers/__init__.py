"""Shared by the test files: tiny corpora in the real formats, run arguments, fault injectors."""
