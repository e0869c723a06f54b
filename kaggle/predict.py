"""Write a Kaggle submission (``id,label``, one row per test frame) from a trained checkpoint.

    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --out submission.csv
    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --split dev
    python kaggle/predict.py ... --accelerator gpu --devices 2     # DDP: same bytes as 1 device

The preprocessing (context k, normalisation, padding, cache dtype, and the training set's
statistics for "global" normalisation) comes from the checkpoint, which Lightning writes with the
DataModule's hyperparameters and state, so predictions see exactly what training saw. Falls back
to the run directory's config.yaml for checkpoints without DataModule hyperparameters.
Prediction runs through a Lightning Trainer and ``lightning_dl.predict.predict_in_order``, so on
several devices every frame is predicted exactly once and rows come back in file order (a plain
distributed sampler would pad, duplicate and interleave them). Only rank 0 writes the file.
The checkpoint is loaded with ``torch.load(weights_only=True)``: tensors and plain containers only
(all that ``lightning_dl.fit`` writes), so a checkpoint from elsewhere cannot run code on load.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

from data_modules.wsj import WSJFramesDataModule
from lightning_dl.atomic import atomic_path
from lightning_dl.classifier import Classifier
from lightning_dl.predict import predict_in_order

DM_KEYS = ("context", "dtype", "normalize", "pad", "cache_dir")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, unpickling nothing but tensors and plain containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: holds Python objects other than tensors and plain containers, which "
            f"lightning_dl.fit never writes, so it is not loaded ({str(error).splitlines()[0]})"
        ) from error
    except (RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {error}"
        ) from error


def datamodule_settings(ckpt: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
    """The training DataModule's preprocessing settings, from the checkpoint or the run config."""
    hp = ckpt.get("datamodule_hyper_parameters")
    if not hp:
        config = ckpt_path.resolve().parent.parent / "config.yaml"
        if not config.is_file():
            raise ValueError(
                f"{ckpt_path}: no DataModule hyperparameters in the checkpoint and "
                f"no run config at {config}"
            )
        data = yaml.safe_load(config.read_text())["data"]
        hp = data.get("init_args", data)
    if "context" not in hp:
        raise ValueError(
            f"{ckpt_path}: the DataModule settings {sorted(hp)} are not a WSJ "
            "frames DataModule's (no 'context')"
        )
    return {key: hp[key] for key in DM_KEYS if key in hp}


def predict(trainer: pl.Trainer, model: Classifier, dm: WSJFramesDataModule) -> np.ndarray:
    """Class index of every frame of ``dm``'s predict split, in file order, on every rank."""
    return predict_in_order(trainer, model, datamodule=dm).numpy()


def main(argv: list[str] | None = None) -> float | Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--resident",
        choices=["auto", "true", "false"],
        default="auto",
        help="hold the frames on the device and gather there (auto: when they fit)",
    )
    p.add_argument("--accelerator", default="auto", help="auto, cpu, gpu, ...")
    p.add_argument("--devices", type=int, default=1, help="processes (DDP when more than 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args(argv)

    if args.split == "test" and args.out.exists() and not args.overwrite:
        p.error(f"{args.out} exists; pass --overwrite to replace it")
    if not args.ckpt.is_file():
        p.error(f"{args.ckpt}: checkpoint not found")

    ckpt = load_checkpoint(args.ckpt)
    settings = datamodule_settings(ckpt, args.ckpt)
    dm = WSJFramesDataModule(
        str(args.data_dir),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        predict_split=args.split,
        resident={"auto": "auto", "true": True, "false": False}[args.resident],
        **settings,
    )
    dm.load_state_dict(ckpt.get(WSJFramesDataModule.__qualname__, {}))
    if dm.hparams.normalize == "global" and dm.global_stats is None:
        raise ValueError(
            f"{args.ckpt}: trained with global normalisation but the checkpoint "
            "holds no training statistics"
        )
    model = Classifier.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True)
    hp = model.hparams
    if hp.num_classes != dm.num_classes or tuple(hp.input_shape) != dm.input_shape:
        raise ValueError(
            f"{args.ckpt}: model expects input {tuple(hp.input_shape)} -> "
            f"{hp.num_classes} classes; the data gives {dm.input_shape} -> "
            f"{dm.num_classes}"
        )

    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    preds = predict(trainer, model, dm)
    n_frames = dm.datasets[f"{args.split}-unlabelled"].entry.meta["n_frames"]
    if len(preds) != n_frames:
        raise RuntimeError(f"{len(preds)} predictions for {n_frames} {args.split} frames")
    if not trainer.is_global_zero:
        return args.out
    if args.split == "dev":
        labels = dm.datasets["dev-unlabelled"].entry.open_labels()
        accuracy = float((preds == np.asarray(labels)).mean())
        k = dm.hparams.context
        print(f"dev frame accuracy: {accuracy:.4f} ({len(labels):,} frames, k={k})")
        return accuracy
    rows = np.column_stack([np.arange(n_frames), preds])
    with atomic_path(args.out) as tmp:
        np.savetxt(tmp, rows, fmt="%d", delimiter=",", header="id,label", comments="")
    print(f"wrote {args.out}: {n_frames:,} rows (id,label)")
    return args.out


if __name__ == "__main__":
    main()
