"""Frame windows with k frames of context: the DataModule, its cache and its two gather paths."""
