"""CLI: python -m data_modules.speech.demo_corpus --out DIR --utterances 2000 --seed 0 --workers 2
[--layout kaggle|librispeech|libriphone|wsj_ctc|librispeech_ctc]"""

from __future__ import annotations

import argparse
import os
import time

from data_modules.errors import run_main

from .generate import build_demo_corpus, corpus_matches, read_manifest
from .layouts import LAYOUTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_modules.speech.demo_corpus",
        description="Build the eSpeak NG demo corpus in a course's file layout. Needs the "
        'optional extra: pip install -e ".[demo]"',
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--utterances", type=int, default=2000, help="total (80/10/10 split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes (default: min(2, cores))",
    )
    parser.add_argument(
        "--layout",
        choices=list(LAYOUTS),
        default="kaggle",
        help="kaggle: CMU 11-785 HW1P2 Fall 2019 (WSJ); librispeech: HW1P2 2021 on; "
        "libriphone: NTU ML2022 HW2",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing demo corpus built for another request",
    )
    args = parser.parse_args(argv)
    reused = corpus_matches(args.out, args.utterances, args.seed, args.layout)
    start = time.perf_counter()
    out = build_demo_corpus(
        args.out, args.utterances, args.seed, args.workers, args.overwrite, args.layout
    )
    manifest = read_manifest(out)
    total = sum(s["frames"] for s in manifest["splits"].values())
    print(
        f"{'reused' if reused else 'built'} {out} ({manifest.get('layout', 'kaggle')} layout) "
        f"in {time.perf_counter() - start:.1f} s"
    )
    for name, split in manifest["splits"].items():
        print(
            f"  {name:5s} {split['utterances']:6d} utterances {split['frames']:9d} frames "
            f"{len(split['voices']):3d} voices"
        )
    if not reused:
        print(
            f"  synthesis {manifest['build_seconds']:.1f} s = "
            f"{total / manifest['build_seconds']:,.0f} frames/s with {args.workers} worker(s)"
        )
    return 0


if __name__ == "__main__":
    run_main(main)
