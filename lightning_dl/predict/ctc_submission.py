"""The HW3P2 submission (or the dev distance) from a CTC checkpoint; ``kaggle/predict.py`` calls it.

One row per utterance: ``Id,Predicted`` in file order (2019/2020, WSJ) or ``index,label`` in
sorted file-name order (2021 on, LibriSpeech), the prediction a string of the course's
one-character phoneme codes, or with ``--label-format symbols`` the phoneme symbols separated
by spaces. The codes, symbols, layout and normalisation come from the checkpoint (the
DataModule's hyperparameters and state), so prediction reads the data as training did.
Decoding is greedy, or prefix beam search with ``--beam-width N`` (N > 1). Predictions go
through :func:`lightning_dl.predict.ordered.predict_in_order`, so several devices give the same
file.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torchmetrics.functional.text import edit_distance

from data_modules.errors import UserInputError
from data_modules.io.atomic import atomic_path
from data_modules.speech.layouts.sequences import SUBMISSION_HEADER, read_split
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from lightning_dl.predict.ordered import predict_in_order, prediction_trainer
from lightning_dl.tasks.ctc import CTCRecognizer
from lightning_dl.tasks.ctc_decode import to_text
from lightning_dl.tasks.seq2seq import Seq2SeqRecognizer

DM_CLASS = UtteranceSequencesDataModule.__qualname__
DM_KEYS = ("normalize",)


def is_ctc_checkpoint(ckpt: dict[str, Any]) -> bool:
    """True for a checkpoint written with :class:`UtteranceSequencesDataModule`."""
    return DM_CLASS in ckpt


def decoded(trainer: pl.Trainer, model: CTCRecognizer, dm: UtteranceSequencesDataModule) -> list:
    """Each utterance's phoneme indices, in file order."""
    dm.setup("predict")
    dataset = dm.datasets[f"{dm.hparams.predict_split}-unlabelled"]
    model.decode_width = int(np.max(model.backbone.output_lengths(dataset.lengths)))
    rows = predict_in_order(trainer, model, datamodule=dm).numpy()
    in_file_order = np.empty_like(rows)
    in_file_order[dataset.order] = rows
    return [row[row >= 0].astype(np.int64) for row in in_file_order]


def write_csv(path: Path, header: str, labels: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header.split(","))
        writer.writerows(enumerate(labels))


def run(args: argparse.Namespace, ckpt: dict[str, Any]) -> float | Path:
    state = ckpt[DM_CLASS]
    hp = ckpt.get("datamodule_hyper_parameters") or {}
    try:
        seq2seq = "Seq2Seq" in ckpt.get("hyper_parameters", {}).get("_class_path", "")
        model_class = Seq2SeqRecognizer if seq2seq else CTCRecognizer
        model = model_class.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True)
    except (TypeError, KeyError, RuntimeError) as error:
        raise UserInputError(
            f"{args.ckpt}: not a lightning_dl.tasks.ctc.CTCRecognizer checkpoint this version "
            "can load "
            f"({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from error
    if args.beam_width is not None:
        if args.beam_width < 1:
            raise UserInputError(f"--beam-width must be at least 1, got {args.beam_width}")
        model.hparams.beam_width = args.beam_width
    fmt = state["inventory"]["format"]
    dm = UtteranceSequencesDataModule(
        str(args.data_dir),
        source=fmt,
        batch_size=args.batch_size or 32,
        predict_split=args.split,
        resident={"auto": "auto", "true": True, "false": False}[args.resident],
        **{key: hp[key] for key in DM_KEYS if key in hp},
    )
    dm.load_state_dict(state)
    inventory = dm.inventory
    if model.hparams.num_classes != inventory.num_classes:
        raise UserInputError(
            f"{args.ckpt}: the model predicts {model.hparams.num_classes} phonemes, its data "
            f"inventory has {inventory.num_classes}"
        )
    model.codes = np.array(inventory.codes)
    trainer = prediction_trainer(ckpt, args.accelerator, args.devices, args.precision)
    sequences = decoded(trainer, model, dm)
    if not trainer.is_global_zero:
        return args.out
    how = "greedy" if model.hparams.beam_width <= 1 else f"beam {model.hparams.beam_width}"
    if args.split == "dev":
        truth, _ = read_split(fmt, args.data_dir, "dev", True, inventory)
        codes = np.array(inventory.codes)
        distance = float(
            edit_distance(
                to_text(sequences, codes), to_text(truth.targets, codes), reduction="mean"
            )
        )
        print(f"dev mean Levenshtein distance: {distance:.4f} ({len(sequences)} utterances, {how})")
        return distance
    if args.label_format == "symbols":
        labels = to_text(sequences, np.array(inventory.symbols), sep=" ")
    else:
        labels = to_text(sequences, np.array(inventory.codes))
    header = SUBMISSION_HEADER[fmt]
    with atomic_path(args.out) as tmp:
        write_csv(tmp, header, labels)
    print(f"wrote {args.out}: {len(labels):,} rows ({header}, {args.label_format}, {how})")
    return args.out
