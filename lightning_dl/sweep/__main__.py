from data_modules.errors import run_main
from lightning_dl.sweep import main

if __name__ == "__main__":
    run_main(main)
