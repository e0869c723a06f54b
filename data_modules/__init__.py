"""The data, by kind: ``images/``, ``speech/``, ``batches/``, ``io/`` and ``errors`` (the one-line
error contract). ``lightning_dl`` imports this package; this package never imports ``lightning_dl``.
"""
