"""The data, by kind: ``images/``, ``speech/`` (frames, sequences, the courses' layouts, the demo
corpus), ``batches/`` (batch-at-once datasets, on-device augmentation, the exact-resumable
order), ``io/`` (atomic writes, downloads, IDX, safe pickles) and ``errors`` (the one-line error
contract). ``lightning_dl`` imports this package; this package never imports ``lightning_dl``.
"""
