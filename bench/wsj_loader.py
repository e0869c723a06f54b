"""WSJ context-window loaders (memory map, device-resident) vs a naive materialising loader vs
the MLP's training consumption.

    PYTHONPATH=. python bench/wsj_loader.py [--frames 1200000] [--contexts 5 12 20]

Writes a random corpus in the Kaggle format (object arrays of (T, 40) float32 utterances; the
values do not matter to a loader), converts it to the cache once, then runs every measurement in
its own subprocess so peak RSS (VmHWM) belongs to that configuration alone:

- memmap: SpeechFramesDataModule.train_dataloader() with ``resident: false`` (shuffled, gathered
         from the memory map on the host, num_workers=0), one full epoch;
- resident: the same with ``resident: true``: frames copied once into the training device's
         memory (here: this process's RAM), windows gathered there; one full epoch;
- naive: np.load(allow_pickle=True), np.pad per utterance, every window materialised into one
         (M, (2k+1)*40) array, TensorDataset + a default DataLoader (per-sample collate); M is
         capped so the windows fit in --naive-max-gb, and its RSS is compared with M's raw bytes;
- model: training steps (forward, backward, AdamW) of configs/wsj_mlp.yaml's backbone at the
         config's batch size on random input: the rate at which training consumes frames.

RSS is reported as peak minus the process's RSS after imports (torch alone is ~300 MB), as a
multiple of the raw frame bytes (frames x 40 x 4). The last line compares the two loaders
paired at k=12: one process alternates ``--rounds`` epochs of each, so both share the same
seconds of a noisy host, and the best epoch of each is compared.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "wsj_mlp.yaml"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _obj(items: list) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def make_corpus(data_dir: Path, n_frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, frames in (("train", n_frames), ("dev", 20_000)):
        lengths = []
        while sum(lengths) < frames:
            lengths.append(int(rng.integers(200, 1200)))
        utts = [rng.normal(size=(t, 40)).astype(np.float32) for t in lengths]
        labels = [rng.integers(0, 138, size=t).astype(np.uint8) for t in lengths]
        np.save(data_dir / f"{split}.npy", _obj(utts), allow_pickle=True)
        np.save(data_dir / f"{split}_labels.npy", _obj(labels), allow_pickle=True)


def _config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


# ------------------------------------------------------------------ measurements (child side)
def run_convert(args: argparse.Namespace) -> dict:
    from data_modules.speech.frames.cache import build_or_load

    shutil.rmtree(args.data_dir / ".wsj_cache", ignore_errors=True)
    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    entry = build_or_load(args.data_dir, "train", utterance_norm=True)
    return {"seconds": time.perf_counter() - t0, "frames": entry.meta["n_frames"], "base_kb": base}


def _datamodule(args: argparse.Namespace, resident: bool):
    from data_modules.speech.frames.datamodule import SpeechFramesDataModule

    dm = SpeechFramesDataModule(
        str(args.data_dir),
        context=args.k,
        batch_size=args.batch_size,
        num_workers=0,
        normalize="utterance",
        resident=resident,
    )
    dm.setup("fit")
    return dm


def _epoch(dm) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    for x, _y in dm.train_dataloader():
        n += len(x)
    return n, time.perf_counter() - t0


def _imported() -> int:
    """RSS (kB) once the loader's modules (torch) are imported: the base a loader adds to."""
    import data_modules.speech.frames.datamodule  # noqa: F401

    return _status_kb("VmRSS")


def run_memmap(args: argparse.Namespace) -> dict:
    base = _imported()
    n, seconds = _epoch(_datamodule(args, resident=False))
    return {"frames_per_s": n / seconds, "frames": n, "base_kb": base}


def run_resident(args: argparse.Namespace) -> dict:
    base = _imported()
    dm = _datamodule(args, resident=True)
    assert dm.resident
    n, seconds = _epoch(dm)
    return {"frames_per_s": n / seconds, "frames": n, "base_kb": base}


def run_paired(args: argparse.Namespace) -> dict:
    loaders = {"memmap": _datamodule(args, False), "resident": _datamodule(args, True)}
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(args.rounds):
        for name, dm in loaders.items():
            n, seconds = _epoch(dm)
            rates[name].append(n / seconds)
    return {"rates": rates, "base_kb": _status_kb("VmRSS")}


def run_naive(args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    width = 2 * args.k + 1
    cap = int(args.naive_max_gb * 2**30 / (width * 40 * 4))
    utts = np.load(args.data_dir / "train.npy", allow_pickle=True)  # trusted: we wrote it
    labs = np.load(args.data_dir / "train_labels.npy", allow_pickle=True)
    windows, labels, m = [], [], 0
    for u, lab in zip(utts, labs, strict=True):
        if m + len(u) > cap:
            break
        u = (u - u.mean(0)) / np.sqrt(u.var(0) + 1e-6)
        padded = np.pad(u, ((args.k, args.k), (0, 0)))
        view = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)  # (T, 40, W)
        windows.append(view.transpose(0, 2, 1).reshape(len(u), -1))  # copies: materialised
        labels.append(lab.astype(np.int64))
        m += len(u)
    del utts, labs
    x = torch.from_numpy(np.concatenate(windows))
    del windows
    y = torch.from_numpy(np.concatenate(labels))
    build = time.perf_counter() - t0
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
    n = 0
    t0 = time.perf_counter()
    for xb, _yb in loader:
        n += len(xb)
        if time.perf_counter() - t0 > args.seconds:
            break
    return {
        "frames_per_s": n / (time.perf_counter() - t0),
        "frames": m,
        "build_s": build,
        "base_kb": base,
    }


def run_model(args: argparse.Namespace) -> dict:
    import torch

    spec = _config()["model"]["init_args"]["backbone"]
    module, name = spec["class_path"].rsplit(".", 1)
    backbone_cls = getattr(importlib.import_module(module), name)
    model = backbone_cls(((2 * args.k + 1) * 40,), 138, **spec.get("init_args", {})).train()
    hp = _config()["model"]["init_args"]["optimizer"]["init_args"]
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    x = torch.randn(args.batch_size, (2 * args.k + 1) * 40)
    y = torch.randint(0, 138, (args.batch_size,))
    steps, t0 = 0, 0.0
    while steps < 3 or time.perf_counter() - t0 < args.seconds:
        if steps == 2:
            t0 = time.perf_counter()  # two warm-up steps excluded
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return {
        "frames_per_s": (steps - 2) * args.batch_size / (time.perf_counter() - t0),
        "base_kb": _status_kb("VmRSS"),
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------ driver (parent side)
def measure(args: argparse.Namespace, mode: str, k: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--k",
        str(k),
        "--data-dir",
        str(args.data_dir),
        "--batch-size",
        str(args.batch_size),
        "--seconds",
        str(args.seconds),
        "--naive-max-gb",
        str(args.naive_max_gb),
        "--rounds",
        str(args.rounds),
    ]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/wsj_bench"))
    p.add_argument("--frames", type=int, default=1_200_000)
    p.add_argument("--contexts", type=int, nargs="+", default=[5, 12, 20])
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--seconds", type=float, default=10.0, help="time cap: naive loop, model")
    p.add_argument("--naive-max-gb", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3, help="paired epochs of each loader, k=12")
    p.add_argument("--child", choices=["convert", "memmap", "resident", "paired", "naive", "model"])
    p.add_argument("--k", type=int, default=12)
    args = p.parse_args()
    if args.batch_size is None:
        args.batch_size = int(_config()["data"]["init_args"]["batch_size"])
    if args.child:
        result = globals()[f"run_{args.child}"](args)
        result["peak_kb"] = _status_kb("VmHWM")
        print(json.dumps(result))
        return

    if not (args.data_dir / "train.npy").is_file():
        print(f"writing a {args.frames:,}-frame random corpus to {args.data_dir} ...", flush=True)
        make_corpus(args.data_dir, args.frames)
    conv = measure(args, "convert", 0)
    raw_mb = conv["frames"] * 160 / 2**20
    conv_x = (conv["peak_kb"] - conv["base_kb"]) / 1024 / raw_mb
    print(
        f"corpus: {conv['frames']:,} train frames, raw {raw_mb:.0f} MB; cache conversion "
        f"{conv['seconds']:.1f} s, peak RSS +{conv_x:.2f}x raw; batch {args.batch_size}\n"
    )
    head = (
        f"{'k':>3} {'memmap fr/s':>11} {'resident fr/s':>13} {'naive fr/s':>10} "
        f"{'model fr/s':>10} {'memmap/model':>12} {'memmap RSS':>15} {'resident RSS':>15} "
        f"{'naive RSS':>15} {'naive frames':>12} {'naive build':>11}"
    )
    print(head + "\n" + "-" * len(head), flush=True)

    def rss(result: dict, raw: float) -> str:
        mb = (result["peak_kb"] - result["base_kb"]) / 1024
        return f"{mb:>6.0f}MB {mb / raw:>5.2f}x"

    for k in args.contexts:
        memmap, resident, naive, model = (
            measure(args, m, k) for m in ("memmap", "resident", "naive", "model")
        )
        naive_raw = naive["frames"] * 160 / 2**20
        ratio = memmap["frames_per_s"] / model["frames_per_s"]
        print(
            f"{k:>3} {memmap['frames_per_s']:>11,.0f} {resident['frames_per_s']:>13,.0f} "
            f"{naive['frames_per_s']:>10,.0f} {model['frames_per_s']:>10,.0f} {ratio:>11.1f}x "
            f"{rss(memmap, raw_mb)} {rss(resident, raw_mb)} {rss(naive, naive_raw)} "
            f"{naive['frames']:>12,} {naive['build_s']:>10.1f}s",
            flush=True,
        )
    print(
        "\nRSS = peak (VmHWM) minus RSS after imports, and as a multiple of the raw bytes of the "
        "frames that loader holds (resident: its copy in RAM, padding rows included).\n"
        "Goals: memmap/model >= 10x; memmap RSS <= 1.3x raw; resident/memmap >= 2x at k=12."
    )
    paired = measure(args, "paired", 12)["rates"]
    best = {name: max(rates) for name, rates in paired.items()}
    rounds = ", ".join(
        f"{r / m:.2f}" for m, r in zip(paired["memmap"], paired["resident"], strict=True)
    )
    print(
        f"paired, {args.rounds} epochs each: memmap best {best['memmap']:,.0f} frames/s, "
        f"resident best {best['resident']:,.0f} frames/s (per round: {rounds})"
    )
    print(f"resident/memmap frames/s at k=12: {best['resident'] / best['memmap']:.2f}")


if __name__ == "__main__":
    main()
