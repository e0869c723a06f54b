"""A Kaggle submission, or the dev score, of a checkpoint: what ``kaggle/predict.py`` runs.

Preprocessing, layout and inventory come from the checkpoint, so the data is read as training
read it. Frames: a row per test frame, its class index or phoneme symbol. Sequences: a row per
utterance, its ``codes`` joined or (``--label-format symbols``) its symbols space-separated."""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from torchmetrics.functional.text import edit_distance

from data_modules.errors import InputFileNotFoundError, UserInputError, describe
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


def _option(default: Any = None, **argparse: Any) -> Any:
    return field(default=default, metadata=argparse)


@dataclass(frozen=True)
class Settings:
    """The command line, declared once: each field is an option (``data_dir``: ``--data-dir``)."""

    ckpt: Path = _option(MISSING, type=Path, required=True)  # MISSING: no default
    data_dir: Path = _option(MISSING, type=Path, required=True)
    out: Path = _option(Path("submission.csv"), type=Path)
    split: str = _option("test", choices=["test", "dev"])
    batch_size: int | None = _option(type=int, help="frames (default 4096) or utterances (32)")
    num_workers: int = _option(0, type=int, help="frame checkpoints: DataLoader workers")
    resident: bool | str = _option(
        "auto",
        choices=["auto", "true", "false"],
        help="hold the frames on the device and gather there (auto: when they fit)",
    )
    accelerator: str = _option("auto", help="auto, cpu, gpu, ...")
    devices: int = _option(1, type=int, help="processes (DDP when more than 1)")
    overwrite: bool = _option(False, action="store_true", help="replace an existing --out file")
    precision: str | None = _option(help="32-true, bf16-mixed, ...; default: the checkpoint's")
    label_format: str = _option(
        "codes",
        choices=["codes", "symbols"],
        help="sequence checkpoints: the one-character codes, or space-separated symbols",
    )
    beam_width: int | None = _option(type=int, help="sequence checkpoints: beam width (1: greedy)")


def datamodule_settings(ckpt: dict[str, Any], ckpt_path: Path) -> dict[str, Any]:
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


def predict(
    s: Settings, ckpt: dict[str, Any], model: pl.LightningModule, dm: pl.LightningDataModule
) -> tuple[np.ndarray, bool]:
    """The predictions in dataset order, and whether this process writes; at the checkpoint's
    precision (unless ``--precision``), so the labels are those fit's test saw."""
    precision = resolve_precision(s.precision or checkpoint_precision(ckpt), s.accelerator)
    try:
        trainer = pl.Trainer(
            accelerator=s.accelerator,
            devices=s.devices,
            strategy="ddp" if s.devices > 1 else "auto",
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=sys.stdout.isatty(),  # a log file gets no redrawn bar
            precision=precision,
        )
    except (MisconfigurationException, ValueError, ImportError) as error:  # Lightning refuses
        raise UserInputError(
            f"--accelerator {s.accelerator} --devices {s.devices} --precision {s.precision}: "
            f"{describe(error)}"
        ) from error
    return predict_in_order(trainer, model, datamodule=dm).numpy(), trainer.is_global_zero


def write_submission(
    path: Path, classes: np.ndarray, header: str, symbols: tuple[str, ...] | None
) -> None:
    """``header`` then one ``id,label`` row per frame: the class index, or its symbol."""
    labels = classes if symbols is None else np.asarray(symbols, dtype=object)[classes]
    rows = np.column_stack([np.arange(len(classes)), labels])
    np.savetxt(path, rows, fmt="%s", delimiter=",", header=header, comments="", encoding="utf-8")


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
    preds, writes = predict(s, ckpt, model, dm)
    n_frames = dm.datasets[f"{s.split}-unlabelled"].entry.meta["n_frames"]
    if len(preds) != n_frames:
        raise RuntimeError(f"{len(preds)} predictions for {n_frames} {s.split} frames")
    if not writes:
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
    dm.setup("predict")
    rows, writes = predict(s, ckpt, model, dm)
    in_file_order = np.argsort(dm.datasets[f"{s.split}-unlabelled"].order)
    outputs = [row[row >= 0].astype(np.int64) for row in rows[in_file_order]]
    if not writes:
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
    sep = ""
    if s.label_format == "symbols" and inventory.unit != "characters":  # characters: the text
        sep, codes = " ", np.array(inventory.symbols)
    labels = to_text(outputs, codes, sep)
    header = sequences.SUBMISSION_HEADER[fmt]
    with atomic_path(s.out) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header.split(","), *enumerate(labels)])
    print(f"wrote {s.out}: {len(labels):,} rows ({header}, {s.label_format}, {how})")
    return s.out


def submit(s: Settings) -> float | Path:
    """The submission (``--split test``) or the dev score (``--split dev``) of a checkpoint; an
    --out that cannot or may not be written is refused before any work."""
    counts = {"--batch-size": (s.batch_size, 1), "--devices": (s.devices, 1),
              "--num-workers": (s.num_workers, 0), "--beam-width": (s.beam_width, 1)}  # fmt: skip
    for option, (value, least) in counts.items():
        if value is not None and value < least:
            raise UserInputError(f"{option} {value}: expected at least {least}")
    out = s.out
    if s.split == "test":
        if out.is_dir():
            raise UserInputError(f"--out {out}: is a directory; give the path of a .csv file")
        if out.exists() and not s.overwrite:
            raise UserInputError(f"--out {out}: exists; pass --overwrite to replace it")
        if not out.parent.is_dir():
            raise InputFileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
        check_writable(out.parent, f"--out {out}")
    ckpt = read_checkpoint(s.ckpt)  # as lightning_dl.fit reads it, with the same messages
    if "state_dict" not in ckpt:
        raise UserInputError(
            f"{s.ckpt}: a PyTorch file but not a Lightning checkpoint (no state_dict)"
        )
    return (submit_sequences if SEQUENCES in ckpt else submit_frames)(s, ckpt)


def main(argv: list[str] | None = None) -> float | Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option in fields(Settings):
        name = f"--{option.name.replace('_', '-')}"
        p.add_argument(name, default=option.default, **option.metadata)
    args = vars(p.parse_args(argv))
    args["resident"] = {"auto": "auto", "true": True, "false": False}[args["resident"]]
    return submit(Settings(**args))
