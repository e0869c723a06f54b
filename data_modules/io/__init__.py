"""File IO shared by every reader: atomic writes, downloads, IDX, safe pickles."""
