"""Write a Kaggle submission from a trained checkpoint (``lightning_dl.predict.submission``).

    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --out submission.csv
    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --split dev
    python kaggle/predict.py ... --accelerator gpu --devices 2     # DDP: same bytes as 1 device
    python kaggle/predict.py --ckpt CTC_RUN/checkpoints/best.ckpt --data-dir DIR --beam-width 8

Bad input is one ``error:`` line and exit status 2 (``LIGHTNING_DL_DEBUG=1``: the traceback).
"""

from data_modules.errors import run_main
from lightning_dl.predict.submission import main
from lightning_dl.training.console import silence_harmless_notices

if __name__ == "__main__":
    silence_harmless_notices()
    run_main(main)
