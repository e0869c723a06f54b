"""Each course's file layout read into one form; which layout a folder holds."""
