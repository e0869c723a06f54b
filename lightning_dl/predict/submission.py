"""A Kaggle submission, or the dev score, of a checkpoint: what ``kaggle/predict.py`` runs.

Preprocessing, layout and inventory come from the checkpoint, so prediction reads the data as
training did; rows come in the competition's order, from any number of devices alike. A frame
classifier writes a row per test frame (class indices or phoneme symbols, as its layout's header
expects); a sequence recogniser (``predict_step`` gives indices padded with -1; ``codes`` maps
them to text) a row per utterance: its codes joined, or (``--label-format symbols``) its
inventory's symbols separated by spaces.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torchmetrics.functional.text import edit_distance

from data_modules.errors import InputFileNotFoundError, UserInputError
from data_modules.io.atomic import atomic_path, check_writable
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.layouts import frames, sequences
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from lightning_dl.predict.ordered import predict_in_order
from lightning_dl.tasks.classifier import Classifier
from lightning_dl.tasks.ctc_decode import to_text
from lightning_dl.training.precision import checkpoint_precision, resolve_precision
from lightning_dl.training.run.checkpoint_io import load_module, read_checkpoint, run_config

DM_KEYS = ("context", "dtype", "normalize", "pad", "cache_dir", "val_fraction", "split_seed")
SEQUENCES = UtteranceSequencesDataModule.__qualname__  # the checkpoint key of its data state


@dataclass(frozen=True)
class Settings:
    """The command line, parsed once (see :func:`main` for each option)."""

    ckpt: Path
    data_dir: Path
    out: Path = Path("submission.csv")
    split: str = "test"
    batch_size: int | None = None
    num_workers: int = 0
    resident: bool | str = "auto"
    accelerator: str = "auto"
    devices: int = 1
    overwrite: bool = False
    precision: str | None = None
    label_format: str = "codes"
    beam_width: int | None = None


def datamodule_settings(ckpt: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
    """The training frame DataModule's preprocessing settings."""
    hp = ckpt.get("datamodule_hyper_parameters")
    if not hp:
        raise UserInputError(
            f"{ckpt_path}: no DataModule hyperparameters in the checkpoint and "
            f"no run config at {run_config(ckpt_path)}"
        )
    if "context" not in hp:
        raise UserInputError(
            f"{ckpt_path}: the DataModule settings {sorted(hp)} are not a WSJ "
            "frames DataModule's (no 'context')"
        )
    return {key: hp[key] for key in DM_KEYS if key in hp}


def prediction_trainer(s: Settings, checkpoint: dict[str, Any]) -> pl.Trainer:
    """``--devices`` processes, nothing logged or saved, at the precision the checkpoint trained
    at unless ``--precision`` says otherwise, so the labels are those fit's test saw."""
    return pl.Trainer(
        accelerator=s.accelerator,
        devices=s.devices,
        strategy="ddp" if s.devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=sys.stdout.isatty(),  # a log file gets no redrawn bar
        precision=resolve_precision(s.precision or checkpoint_precision(checkpoint), s.accelerator),
    )


def write_submission(
    path: Path, classes: np.ndarray, header: str, symbols: tuple[str, ...] | None
) -> None:
    """``header`` then one ``id,label`` row per frame: the class index, or its symbol."""
    labels = classes if symbols is None else np.asarray(symbols, dtype=object)[classes]
    rows = np.column_stack([np.arange(len(classes)), labels])
    np.savetxt(path, rows, fmt="%s", delimiter=",", header=header, comments="")


def check_output_path(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an --out that cannot or may not be written."""
    if out.is_dir():
        raise UserInputError(f"--out {out}: is a directory; give the path of a .csv file to write")
    if out.exists() and not overwrite:
        raise UserInputError(f"--out {out}: exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise InputFileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    check_writable(out.parent, f"--out {out}")


def submit_frames(s: Settings, ckpt: dict[str, Any]) -> float | Path:
    settings = datamodule_settings(ckpt, s.ckpt)
    model = load_module(s.ckpt, Classifier, ckpt)
    state = ckpt[SpeechFramesDataModule.__qualname__]
    dm = SpeechFramesDataModule(
        str(s.data_dir),
        batch_size=s.batch_size or 4096,
        num_workers=s.num_workers,
        predict_split=s.split,
        resident=s.resident,
        source=state["inventory"]["format"],
        **settings,
    )
    dm.load_state_dict(state)
    if dm.hparams.normalize == "global" and dm.global_stats is None:
        raise UserInputError(
            f"{s.ckpt}: trained with global normalisation but the checkpoint "
            "holds no training statistics"
        )
    hp = model.hparams
    if hp.num_classes != dm.num_classes or tuple(hp.input_shape) != dm.input_shape:
        raise UserInputError(
            f"{s.ckpt}: model expects input {tuple(hp.input_shape)} -> {hp.num_classes} "
            f"classes; the data gives {dm.input_shape} -> {dm.num_classes}"
        )
    trainer = prediction_trainer(s, ckpt)
    preds = predict_in_order(trainer, model, datamodule=dm).numpy()
    n_frames = dm.datasets[f"{s.split}-unlabelled"].entry.meta["n_frames"]
    if len(preds) != n_frames:
        raise RuntimeError(f"{len(preds)} predictions for {n_frames} {s.split} frames")
    if not trainer.is_global_zero:
        return s.out
    if s.split == "dev":
        labels = dm.datasets["dev-unlabelled"].entry.open_labels()
        accuracy = float((preds == np.asarray(labels)).mean())
        k = dm.hparams.context
        print(f"dev frame accuracy: {accuracy:.4f} ({len(labels):,} frames, k={k})")
        return accuracy
    header = frames.SUBMISSION_HEADER[dm.inventory.format]
    with atomic_path(s.out) as tmp:
        write_submission(tmp, preds, header, dm.inventory.symbols)
    print(f"wrote {s.out}: {n_frames:,} rows ({header})")
    return s.out


def submit_sequences(s: Settings, ckpt: dict[str, Any]) -> float | Path:
    model = load_module(s.ckpt, pl.LightningModule, ckpt)
    name = type(model).__name__
    if not hasattr(model, "codes"):
        raise UserInputError(f"{s.ckpt}: {name} has no `codes` (index -> text) to write")
    if s.beam_width is not None:
        if s.beam_width < 1:
            raise UserInputError(f"--beam-width must be at least 1, got {s.beam_width}")
        if "beam_width" not in model.hparams:
            raise UserInputError(f"--beam-width: {name} has no beam search")
        model.hparams.beam_width = s.beam_width
    fmt, hp = ckpt[SEQUENCES]["inventory"]["format"], ckpt.get("datamodule_hyper_parameters")
    dm = UtteranceSequencesDataModule(
        str(s.data_dir),
        source=fmt,
        batch_size=s.batch_size or 32,
        predict_split=s.split,
        resident=s.resident,
        **{key: value for key, value in (hp or {}).items() if key == "normalize"},
    )
    dm.load_state_dict(ckpt[SEQUENCES])
    inventory = dm.inventory
    if model.hparams.get("num_classes", inventory.num_classes) != inventory.num_classes:
        raise UserInputError(
            f"{s.ckpt}: the model predicts {model.hparams.num_classes} phonemes, its data "
            f"inventory has {inventory.num_classes}"
        )
    trainer = prediction_trainer(s, ckpt)
    dm.setup("predict")
    rows = predict_in_order(trainer, model, datamodule=dm).numpy()
    in_file_order = np.empty_like(rows)
    in_file_order[dm.datasets[f"{s.split}-unlabelled"].order] = rows
    outputs = [row[row >= 0].astype(np.int64) for row in in_file_order]
    if not trainer.is_global_zero:
        return s.out
    beam = model.hparams.get("beam_width", 1)
    how = "greedy" if beam <= 1 else f"beam {beam}"
    codes = np.asarray(model.codes)
    if s.split == "dev":
        truth, _ = sequences.read_split(fmt, s.data_dir, "dev", True, inventory)
        texts = to_text(outputs, codes), to_text(truth.targets, codes)
        distance = float(edit_distance(*texts, reduction="mean"))
        print(f"dev mean Levenshtein distance: {distance:.4f} ({len(outputs)} utterances, {how})")
        return distance
    sep, codes = (" ", np.array(inventory.symbols)) if s.label_format == "symbols" else ("", codes)
    labels = to_text(outputs, codes, sep)
    header = sequences.SUBMISSION_HEADER[fmt]
    with atomic_path(s.out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header.split(","))
        writer.writerows(enumerate(labels))
    print(f"wrote {s.out}: {len(labels):,} rows ({header}, {s.label_format}, {how})")
    return s.out


def submit(s: Settings) -> float | Path:
    """The submission (``--split test``) or the dev score (``--split dev``) of a checkpoint."""
    if s.split == "test":
        check_output_path(s.out, s.overwrite)
    ckpt = read_checkpoint(s.ckpt)  # as lightning_dl.fit reads it, with the same messages
    if "state_dict" not in ckpt:
        raise UserInputError(
            f"{s.ckpt}: a PyTorch file but not a Lightning checkpoint (no state_dict)"
        )
    return (submit_sequences if SEQUENCES in ckpt else submit_frames)(s, ckpt)


def main(argv: list[str] | None = None) -> float | Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument("--batch-size", type=int, help="frames (default 4096) or utterances (32)")
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
    p.add_argument("--precision", help="32-true, bf16-mixed, ...; default: the checkpoint's")
    p.add_argument(
        "--label-format",
        choices=["codes", "symbols"],
        default="codes",
        help="sequence checkpoints: the one-character codes, or space-separated symbols",
    )
    p.add_argument(
        "--beam-width", type=int, help="sequence checkpoints: beam search width (1: greedy)"
    )
    args = vars(p.parse_args(argv))
    args["resident"] = {"auto": "auto", "true": True, "false": False}[args["resident"]]
    return submit(Settings(**args))
