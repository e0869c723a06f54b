"""Demo-corpus generation speed: frames/s with 1 and 2 worker processes.

Reports wall-clock frames/s and frames per CPU-second (robust to a busy machine), against the
prototype figure quoted in issue 5 (about 18,700 frames/s on one core). Needs `.[demo]`.

    PYTHONPATH=. python bench/demo_corpus_speed.py --utterances 200
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from data_modules.speech.demo_corpus import corpus
from data_modules.speech.demo_corpus.generate import check_voices, render_all

PROTOTYPE_FRAMES_PER_S = 18_700  # issue 5: prototype, one core, this machine


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    specs = corpus.make_specs(args.utterances, args.seed)
    check_voices(specs)
    render_all(specs[:4], 1)  # warm-up: load the library and numpy's FFT plans
    print(
        f"{args.utterances} utterances, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (shared machine)"
    )
    print(
        f"{'workers':>7} {'frames':>8} {'wall s':>7} {'frames/s':>9} {'frames/CPU-s':>13} "
        f"{'x realtime':>10}"
    )
    for workers in (1, 2):
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        results, _ = render_all(specs, workers)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        frames = sum(len(labels) for _, labels in results)
        print(
            f"{workers:>7} {frames:>8} {wall:>7.2f} {frames / wall:>9,.0f} "
            f"{frames / cpu:>13,.0f} {frames / 100 / wall:>10,.0f}"
        )
    print(
        f"{'proto':>7} {'':>8} {'':>7} {PROTOTYPE_FRAMES_PER_S:>9,} {'':>13} "
        f"{PROTOTYPE_FRAMES_PER_S / 100:>10,.0f}   (issue 5, one core)"
    )


if __name__ == "__main__":
    main()
