"""A demo corpus (Kaggle or LibriSpeech layout) whose training split keeps only some voices.

    PYTHONPATH=. python bench/demo_corpus_voices.py data/demo500 data/demo500_m1f1 --keep m1 f1

The demo corpus trains on 12 voice variants (x 8 accents); a small course corpus may have only a
few speakers, where speaker augmentation should matter most. This writes a copy of ``SRC`` with
the training utterances of the ``--keep`` variants only (all accents), dev and test unchanged
(held-out variants), and no manifest, so ``--data.source auto`` reads it as the course's files.
Each utterance's voice comes from its recipe (``corpus.make_specs`` of the manifest's request).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from data_modules.speech.demo_corpus import layouts
from data_modules.speech.demo_corpus.corpus import make_specs
from data_modules.speech.layouts.wsj import read_utterances


def object_array(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--keep", nargs="+", required=True, help="training variants, e.g. m1 f1")
    args = p.parse_args()
    manifest = json.loads((args.src / "manifest.json").read_text())
    request = manifest["request"]
    specs = [s for s in make_specs(request["n_utterances"], request["seed"]) if s.split == "train"]
    keep = [i for i, s in enumerate(specs) if s.voice.partition("+")[2] in args.keep]
    args.out.mkdir(parents=True, exist_ok=False)
    layout = manifest.get("layout", "kaggle")
    if layout == "librispeech":  # one file per utterance: copy the kept ones
        for split, partition in layouts.PARTITIONS.items():
            chosen = keep if split == "train" else None
            for kind in ("mfcc", "transcript"):
                (args.out / partition / kind).mkdir(parents=True)
                for f in sorted((args.src / partition / kind).glob("*.npy")):
                    if chosen is None or int(f.stem.split("-")[1]) in chosen:
                        shutil.copy(f, args.out / partition / kind / f.name)
        print(f"train: {len(keep)} utterances, {len({specs[i].voice for i in keep})} voices")
        return
    if layout != "kaggle":
        raise SystemExit(f"error: {args.src} is in the {layout} layout: kaggle or librispeech")
    for split in ("train", "dev", "test"):
        frames = read_utterances(args.src / f"{split}.npy")
        labels = read_utterances(args.src / f"{split}_labels.npy", "labels")
        if split == "train":
            frames, labels = [frames[i] for i in keep], [labels[i] for i in keep]
        np.save(args.out / f"{split}.npy", object_array(frames))
        np.save(args.out / f"{split}_labels.npy", object_array(labels))
        voices = len({specs[i].voice for i in keep}) if split == "train" else "held-out"
        print(f"{split}: {len(frames)} utterances, {sum(map(len, frames))} frames, {voices} voices")


if __name__ == "__main__":
    main()
