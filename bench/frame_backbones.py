"""MLP against the TDNN frame-window backbone, each with and without masking, through the fit path.

    PYTHONPATH=. python bench/frame_backbones.py --data-dir data/wsj_demo2k --steps 1500

Every run is ``python -m lightning_dl.fit`` with ``configs/quickstart.yaml`` (AdamW, one-cycle)
at context k and batch size given here, and one backbone overlay: the config's MLP widened to
``--mlp-hidden``, or ``lightning_dl.models.tdnn.TDNN`` with ``--tdnn-channels`` and a head of
``--tdnn-hidden`` (sized to about the MLP's parameters). Masking adds
``augment: {freq_mask, time_mask, p}``. The best checkpoint (by dev accuracy) is then scored in
evaluation mode on dev, on test (held-out voices in the demo corpus) and on a fixed sample of
the training frames, for the train-test gap. Accuracy figures only; wall times on a shared host
are upper bounds.

Augmentation rows (``--augment NAME=JSON ...``): ``--backbone`` trained with no augmentation and
with each ``--data.augment`` given, once per ``--seeds`` seed (the seed sets initialisation,
data order and the augmentation's draws), then mean ± standard deviation over the seeds, and
the paired difference of test accuracy (held-out voices) against no augmentation:

    PYTHONPATH=. python bench/frame_backbones.py --data-dir data/demo500 --steps 600 \
        --val-every 200 --augment 'vtlp0.1={"vtlp": 0.1}' 'vtlp0.2={"vtlp": 0.2}'

``--known-voices DIR`` (a demo corpus built with another seed, or its subset of the same
training variants from bench/demo_corpus_voices.py) adds accuracy on DIR's training split: new
sentences spoken by the training voices, so "known voices - test" is the part of the gap that
is the voices' and not the sentences'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "quickstart.yaml"


def overlay(backbone: str, args: argparse.Namespace) -> dict:
    if backbone == "mlp":
        spec = {"class_path": "lightning_dl.models.mlp.MLP",
                "init_args": {"hidden": args.mlp_hidden, "dropout": args.dropout}}  # fmt: skip
    else:
        spec = {"class_path": "lightning_dl.models.tdnn.TDNN",
                "init_args": {"channels": args.tdnn_channels, "hidden": args.tdnn_hidden,
                              "dropout": args.dropout}}  # fmt: skip
    return {"model": {"init_args": {"backbone": spec}}}


def fit(
    run_dir: Path, backbone: str, augment: dict | None, args: argparse.Namespace, seed: int = 0
) -> float:
    run_dir.mkdir(parents=True, exist_ok=True)
    extra = run_dir / "backbone.yaml"
    extra.write_text(yaml.safe_dump(overlay(backbone, args)))
    cmd = [
        sys.executable, "-m", "lightning_dl.fit", "--config", str(CONFIG), "--config", str(extra),
        "--run.dir", str(run_dir / "run"), "--data.data_dir", str(args.data_dir),
        "--data.source", "auto", "--data.context", str(args.k),
        "--data.batch_size", str(args.batch_size), "--trainer.max_steps", str(args.steps),
        "--trainer.val_check_interval", str(args.val_every), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
        "--seed_everything", str(seed), "--trainer.precision", "32-true",
    ]  # fmt: skip
    if augment:
        cmd += ["--data.augment", json.dumps(augment)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


@torch.no_grad()
def scores(ckpt: Path, args: argparse.Namespace) -> dict[str, float]:
    from data_modules.speech.frames.datamodule import SpeechFramesDataModule
    from lightning_dl.tasks.classifier import Classifier

    model = Classifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    dm = SpeechFramesDataModule(str(args.data_dir), context=args.k, resident=True)
    dm.load_state_dict(state["SpeechFramesDataModule"])
    dm.setup("fit")
    dm.setup("test")
    out = {"params": sum(p.numel() for p in model.parameters())}
    rng = np.random.default_rng(0)
    splits = [("train", dm, "train"), ("dev", dm, "dev"), ("test", dm, dm._test_split())]
    if args.known_voices:  # another demo corpus's training split: new sentences, training voices
        other = SpeechFramesDataModule(str(args.known_voices), context=args.k, resident=True)
        other.load_state_dict(state["SpeechFramesDataModule"])
        other.setup("fit")
        splits.append(("known", other, "train"))
    for name, module, split in splits:
        ds = module.datasets[split]
        ids = np.arange(len(ds))
        if name in ("train", "known"):
            ids = np.sort(rng.choice(len(ds), min(len(ds), args.train_sample), replace=False))
        correct = 0
        for start in range(0, len(ids), 8192):
            x, y = ds.__getitems__(ids[start : start + 8192].tolist())
            correct += int((model(x).argmax(-1) == y).sum())
        out[name] = correct / len(ids)
    return out


def augmentation_rows(args: argparse.Namespace) -> None:
    """Each ``--augment NAME=JSON`` (and none) on ``--backbone``, once per seed: mean and spread."""
    conditions = [("none", None)] + [
        (name, json.loads(spec)) for name, _, spec in (a.partition("=") for a in args.augment)
    ]
    print(f"{args.backbone}, k={args.k}, {args.steps} steps of {args.batch_size}, "
          f"seeds {args.seeds}; test = held-out voices")  # fmt: skip
    known = " known voices, new sentences |" if args.known_voices else ""
    print(f"| augment | seed | dev | test | train (sample) | train - test | wall |{known}")
    print("| --- | --- | --- | --- | --- | --- | --- |" + " --- |" * bool(known), flush=True)
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name, augment in conditions:
            run_dir = args.out / f"{name}-seed{seed}"
            best = run_dir / "run" / "checkpoints" / "best.ckpt"
            if args.rescore and best.is_file():  # scored again, not trained again
                wall = float("nan")
            else:
                wall = fit(run_dir, args.backbone, augment, args, seed)
            s = scores(best, args)
            results.setdefault(name, []).append(s)
            print(
                f"| {name} | {seed} | {s['dev']:.4f} | {s['test']:.4f} | {s['train']:.4f} "
                f"| {s['train'] - s['test']:+.4f} | {wall:.0f} s |"
                + (f" {s['known']:.4f} |" if known else ""),
                flush=True,
            )
    print()
    print(
        "| augment | spec | dev | test (held-out voices) | test - none's | train - test |"
        + (" known voices - test |" if known else "")
    )
    print("| --- | --- | --- | --- | --- | --- |" + " --- |" * bool(known))
    base = np.array([r["test"] for r in results["none"]])
    for name, augment in conditions:
        rows = results[name]
        dev, test = (np.array([r[k] for r in rows]) for k in ("dev", "test"))
        gap = np.array([r["train"] - r["test"] for r in rows])
        delta = test - base  # paired by seed: same initialisation and data order

        def ms(v: np.ndarray) -> str:
            return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"

        spec = json.dumps(augment) if augment else "none"
        voice_gap = f" {ms(np.array([r['known'] - r['test'] for r in rows]))} |" if known else ""
        row = f"| {name} | `{spec}` | {ms(dev)} | {ms(test)} | {ms(delta)} | {ms(gap)} |"
        print(row + voice_gap)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path("data/wsj_demo2k"))
    p.add_argument("--out", type=Path, default=Path("runs/frame_backbones"))
    p.add_argument("--k", type=int, default=12)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--mlp-hidden", type=int, nargs="+", default=[512, 512])
    p.add_argument("--tdnn-channels", type=int, nargs="+", default=[128, 128, 128])
    p.add_argument("--tdnn-hidden", type=int, nargs="+", default=[512])
    p.add_argument("--masking", type=json.loads, default={"freq_mask": 8, "time_mask": 4, "p": 0.5})
    p.add_argument("--train-sample", type=int, default=100_000)
    p.add_argument("--only", nargs="+", default=None, help="e.g. mlp tdnn+mask")
    p.add_argument(
        "--augment",
        nargs="+",
        default=None,
        metavar="NAME=JSON",
        help="augmentation rows instead: e.g. 'vtlp=' + json of {\"vtlp\": 0.1}; none is added",
    )
    p.add_argument("--backbone", choices=["mlp", "tdnn"], default="mlp", help="with --augment")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --augment")
    p.add_argument(
        "--known-voices",
        type=Path,
        default=None,
        help="a demo corpus of another seed (same layout): its training split's sentences are "
        "new but its voices are the training voices; with --augment, adds that column",
    )
    p.add_argument("--rescore", action="store_true", help="score runs already in --out again")
    args = p.parse_args()
    if args.augment:
        augmentation_rows(args)
        return
    runs = [(b, m) for b in ("mlp", "tdnn") for m in (False, True)]
    print("| backbone | masking | params | dev | test | train (sample) | train - test | wall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for backbone, masking in runs:
        name = backbone + ("+mask" if masking else "")
        if args.only and name not in args.only:
            continue
        run_dir = args.out / name
        wall = fit(run_dir, backbone, args.masking if masking else None, args)
        s = scores(run_dir / "run" / "checkpoints" / "best.ckpt", args)
        mask = json.dumps(args.masking) if masking else "none"
        print(
            f"| {backbone} | {mask} | {s['params'] / 1e6:.2f} M | {s['dev']:.4f} | {s['test']:.4f} "
            f"| {s['train']:.4f} | {s['train'] - s['test']:+.4f} | {wall:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
