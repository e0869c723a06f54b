"""A Kaggle submission (one row per test frame, or per utterance for CTC) from a checkpoint:
what ``kaggle/predict.py`` runs (its docstring has the commands).

The submission is the one the checkpoint's competition expects (its layout is kept in the
checkpoint with the class inventory): ``id,label`` with integer classes (HW1P2 Fall 2019, WSJ),
``id,label`` with phoneme symbols (HW1P2 2021 on, LibriSpeech), ``Id,Class`` with integer classes
(NTU ML2022 HW2, libriphone); ``id`` counts frames in the order the competition lists them.
A CTC checkpoint (``lightning_dl.tasks.ctc``, HW3P2) writes one row per utterance instead:
``Id,Predicted`` (2019/2020) or ``index,label`` (2021 on) with the course's phoneme codes
(``--label-format symbols``: space-separated symbols; ``--beam-width N``: beam search); see
``lightning_dl.predict.ctc_submission``.
The preprocessing (layout, context k, normalisation, padding, cache dtype, the class inventory
and the training set's statistics for "global" normalisation) comes from the checkpoint, which
Lightning writes with the DataModule's hyperparameters and state, so predictions see exactly
what training saw. Falls back to the run directory's config.yaml for checkpoints without
DataModule hyperparameters.
Prediction runs through a Lightning Trainer and ``lightning_dl.predict.ordered.predict_in_order``,
so on several devices every frame is predicted exactly once and rows come back in file order
(a plain distributed sampler would pad, duplicate and interleave them). Only rank 0 writes the file.
The checkpoint is loaded with ``torch.load(weights_only=True)``: tensors and plain containers only
(all that ``lightning_dl.fit`` writes), so a checkpoint from elsewhere cannot run code on load.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import yaml

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.io.atomic import atomic_path, check_writable
from data_modules.speech.checks import Inventory, window_frames
from data_modules.speech.frames.datamodule import WSJFramesDataModule
from data_modules.speech.layouts.frames import SUBMISSION_HEADER
from lightning_dl.predict import ctc_submission
from lightning_dl.predict.ordered import predict_in_order, prediction_trainer
from lightning_dl.tasks.classifier import Classifier
from lightning_dl.training.run.checkpoint_io import read_checkpoint

DM_KEYS = ("context", "dtype", "normalize", "pad", "cache_dir", "val_fraction", "split_seed")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, unpickling nothing but tensors and plain containers; the reader
    (and so every message about a bad file) is the one ``lightning_dl.fit`` uses."""
    ckpt = read_checkpoint(path)
    if "state_dict" not in ckpt:
        raise UserInputError(
            f"{path}: a PyTorch file but not a Lightning checkpoint (no state_dict)"
        )
    return ckpt


def _first_error_line(error: BaseException) -> str:
    """The line of a (torch) error message that says what failed, up to its first full stop."""
    lines = [line for line in str(error).splitlines() if "rror" in line] or str(error).splitlines()
    return (lines[-1] if lines else type(error).__name__).strip().split(". ")[0]


def datamodule_settings(ckpt: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
    """The training DataModule's preprocessing settings, from the checkpoint or the run config."""
    hp = ckpt.get("datamodule_hyper_parameters")
    if not hp:
        config = ckpt_path.resolve().parent.parent / "config.yaml"
        if not config.is_file():
            raise UserInputError(
                f"{ckpt_path}: no DataModule hyperparameters in the checkpoint and "
                f"no run config at {config}"
            )
        data = yaml.safe_load(config.read_text())["data"]
        hp = data.get("init_args", data)
    if "context" not in hp:
        raise UserInputError(
            f"{ckpt_path}: the DataModule settings {sorted(hp)} are not a WSJ "
            "frames DataModule's (no 'context')"
        )
    return {key: hp[key] for key in DM_KEYS if key in hp}


def predict(trainer: pl.Trainer, model: Classifier, dm: WSJFramesDataModule) -> np.ndarray:
    """Class index of every frame of ``dm``'s predict split, in file order, on every rank."""
    return predict_in_order(trainer, model, datamodule=dm).numpy()


def load_model(path: Path) -> Classifier:
    try:
        return Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (TypeError, KeyError, RuntimeError) as error:  # other hyperparameters or weights
        raise UserInputError(
            f"{path}: not a checkpoint of lightning_dl.tasks.classifier.Classifier that this "
            f"version can load ({type(error).__name__}: {_first_error_line(error)})"
        ) from error


def legacy_inventory(model: Classifier, settings: dict[str, Any]) -> Inventory:
    """The inventory of a checkpoint written before inventories were kept: Kaggle WSJ, with the
    model's classes and the feature dimension its input implies."""
    shape = tuple(model.hparams.input_shape)
    window = window_frames(settings.get("context", 0))
    width = shape[-1] if len(shape) == 2 else shape[0] // window
    return Inventory("kaggle", int(width), int(model.hparams.num_classes))


def write_submission(
    path: Path, classes: np.ndarray, header: str, symbols: tuple[str, ...] | None
) -> None:
    """``header`` then one ``id,label`` row per frame: the class index, or its symbol."""
    ids = np.arange(len(classes))
    if symbols is None:
        rows = np.column_stack([ids, classes])
        np.savetxt(path, rows, fmt="%d", delimiter=",", header=header, comments="")
        return
    names = np.asarray(symbols, dtype=object)[classes]
    with open(path, "w") as f:
        f.write(header + "\n")
        f.writelines(f"{i},{name}\n" for i, name in zip(ids.tolist(), names, strict=True))


def check_output_path(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an --out that cannot or may not be written."""
    if out.is_dir():
        raise UserInputError(f"--out {out}: is a directory; give the path of a .csv file to write")
    if out.exists() and not overwrite:
        raise UserInputError(f"--out {out}: exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise InputFileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    check_writable(out.parent, f"--out {out}")


def main(argv: list[str] | None = None) -> float | Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument(
        "--batch-size", type=int, default=None, help="frames (default 4096) or utterances (32)"
    )
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
    p.add_argument(
        "--precision",
        default=None,
        help="32-true, bf16-mixed, auto, ...; default: the checkpoint's, as fit's test ran it",
    )
    p.add_argument(
        "--label-format",
        choices=["codes", "symbols"],
        default="codes",
        help="CTC checkpoints: the course's one-character codes, or space-separated symbols",
    )
    p.add_argument(
        "--beam-width",
        type=int,
        default=None,
        help="CTC checkpoints: prefix beam search of this width (1: greedy; default: the model's)",
    )
    args = p.parse_args(argv)

    if args.split == "test":
        check_output_path(args.out, args.overwrite)
    ckpt = load_checkpoint(args.ckpt)
    if ctc_submission.is_ctc_checkpoint(ckpt):  # HW3P2: one row per utterance
        return ctc_submission.run(args, ckpt)
    args.batch_size = args.batch_size or 4096
    settings = datamodule_settings(ckpt, args.ckpt)
    model = load_model(args.ckpt)
    state = dict(ckpt.get(WSJFramesDataModule.__qualname__) or ckpt.get("WSJFramesDataModule", {}))
    state.setdefault("inventory", legacy_inventory(model, settings).to_state())
    dm = WSJFramesDataModule(
        str(args.data_dir),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        predict_split=args.split,
        resident={"auto": "auto", "true": True, "false": False}[args.resident],
        source=state["inventory"]["format"],
        **settings,
    )
    dm.load_state_dict(state)
    if dm.hparams.normalize == "global" and dm.global_stats is None:
        raise UserInputError(
            f"{args.ckpt}: trained with global normalisation but the checkpoint "
            "holds no training statistics"
        )
    hp = model.hparams
    shape = tuple(hp.input_shape)
    legacy_flat = len(shape) == 1 and shape[0] == math.prod(dm.input_shape)
    if hp.num_classes != dm.num_classes or (shape != dm.input_shape and not legacy_flat):
        raise UserInputError(
            f"{args.ckpt}: model expects input {shape} -> {hp.num_classes} classes; the data "
            f"gives {dm.input_shape} -> {dm.num_classes}"
        )

    trainer = prediction_trainer(ckpt, args.accelerator, args.devices, args.precision)
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
    inventory = dm.inventory
    header = SUBMISSION_HEADER[inventory.format]
    with atomic_path(args.out) as tmp:
        write_submission(tmp, preds, header, inventory.symbols)
    print(f"wrote {args.out}: {n_frames:,} rows ({header})")
    return args.out
