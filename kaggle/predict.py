"""Write a Kaggle submission (``id,label``, one row per test frame) from a trained checkpoint.

    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --out submission.csv
    python kaggle/predict.py --ckpt RUN/checkpoints/best.ckpt --data-dir DIR --split dev

The preprocessing (context k, normalisation, padding, cache dtype, and the training set's
statistics for "global" normalisation) comes from the checkpoint, which Lightning writes with the
DataModule's hyperparameters and state, so predictions see exactly what training saw. Falls back
to the run directory's config.yaml for checkpoints without DataModule hyperparameters.
The checkpoint is a pickle: load only checkpoints you trained or trust.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from data_modules.wsj import WSJFramesDataModule
from lightning_dl.atomic import atomic_path
from lightning_dl.classifier import Classifier

DM_KEYS = ("context", "dtype", "normalize", "pad", "cache_dir")


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


def predict(
    model: Classifier, dm: WSJFramesDataModule, loader: Any, device: torch.device, desc: str
) -> np.ndarray:
    """Class index of every frame, in loader order."""
    out = []
    with torch.inference_mode():
        for i, batch in enumerate(tqdm(loader, desc=desc, unit="batch", file=sys.stderr)):
            batch = [t.to(device, non_blocking=True) for t in batch]
            batch = dm.on_after_batch_transfer(batch, 0)
            logits = model(batch[0])
            if i == 0 and logits.shape[-1] != dm.num_classes:
                raise ValueError(
                    f"model outputs {logits.shape[-1]} classes, data has {dm.num_classes}"
                )
            out.append(logits.argmax(-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def main(argv: list[str] | None = None) -> float | Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--split", choices=["test", "dev"], default="test")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args(argv)

    if args.split == "test" and args.out.exists() and not args.overwrite:
        p.error(f"{args.out} exists; pass --overwrite to replace it")
    if not args.ckpt.is_file():
        p.error(f"{args.ckpt}: checkpoint not found")
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )

    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    settings = datamodule_settings(ckpt, args.ckpt)
    dm = WSJFramesDataModule(
        str(args.data_dir), batch_size=args.batch_size, num_workers=args.num_workers, **settings
    )
    dm.load_state_dict(ckpt.get(WSJFramesDataModule.__qualname__, {}))
    if dm.hparams.normalize == "global" and dm.global_stats is None:
        raise ValueError(
            f"{args.ckpt}: trained with global normalisation but the checkpoint "
            "holds no training statistics"
        )
    model = Classifier.load_from_checkpoint(args.ckpt, map_location=device, weights_only=False)
    model.eval()
    hp = model.hparams
    if hp.num_classes != dm.num_classes or tuple(hp.input_shape) != dm.input_shape:
        raise ValueError(
            f"{args.ckpt}: model expects input {tuple(hp.input_shape)} -> "
            f"{hp.num_classes} classes; the data gives {dm.input_shape} -> "
            f"{dm.num_classes}"
        )

    if args.split == "dev":
        dm.setup("validate")
        labels = torch.from_numpy(np.asarray(dm.datasets["dev"].entry.open_labels()))
        preds = predict(model, dm, dm.val_dataloader(), device, "dev")
        if len(preds) != len(labels):
            raise RuntimeError(f"{len(preds)} predictions for {len(labels)} dev frames")
        accuracy = float((torch.from_numpy(preds) == labels.long()).double().mean())
        k = dm.hparams.context
        print(f"dev frame accuracy: {accuracy:.4f} ({len(labels):,} frames, k={k})")
        return accuracy

    dm.setup("predict")
    n_frames = dm.datasets["test-unlabelled"].entry.meta["n_frames"]
    preds = predict(model, dm, dm.predict_dataloader(), device, "test")
    if len(preds) != n_frames:
        raise RuntimeError(f"{len(preds)} predictions for {n_frames} test frames")
    rows = np.column_stack([np.arange(n_frames), preds])
    with atomic_path(args.out) as tmp:
        np.savetxt(tmp, rows, fmt="%d", delimiter=",", header="id,label", comments="")
    print(f"wrote {args.out}: {n_frames:,} rows (id,label)")
    return args.out


if __name__ == "__main__":
    main()
