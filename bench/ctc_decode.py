"""CTC beam search: flashlight-text's C++ decoder against our own prefix beam search.

For peaked scores (a trained model's: a few frames per phoneme spike, blank elsewhere) and
flat ones (an untrained model's, the worst case for beam search), T frames and V classes, it
prints each decoder's time per utterance and the log-likelihood of the label sequence it
chose (the CTC forward sum over its alignments: higher is the better search).

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/ctc_decode.py [--utterances 5] [--beam 8]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_dl.tasks import ctc_decode
from lightning_dl.tasks.ctc_decode import beam_decode


def scores(kind: str, frames: int, classes: int, seed: int, peak: float) -> torch.Tensor:
    """(1, T, V) log-probabilities; "peaky": ~1 phoneme in 6 frames, each a +peak logit spike."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(frames, classes, generator=g)
    if kind == "peaky":
        path = torch.randint(1, classes, (frames,), generator=g)
        path[torch.rand(frames, generator=g) > 1 / 6] = 0
        logits += peak * F.one_hot(path, classes)
    return logits.log_softmax(-1)[None]


def log_likelihood(log_probs: torch.Tensor, labels) -> float:
    """log P(labels | scores): the sum over every alignment, by CTC's forward pass."""
    targets = torch.as_tensor(labels, dtype=torch.long)[None] + 1
    lp = log_probs.double()[:, None]  # (T, 1, V)
    return -float(F.ctc_loss(lp, targets, [len(lp)], [targets.shape[1]], reduction="sum"))


def host() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", info))) or ["no native bf16"]
    return f"{model[1] if model else platform.processor()} ({', '.join(flags)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=5)
    p.add_argument("--beam", type=int, default=8)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--classes", type=int, default=42)
    p.add_argument("--peak", type=float, default=8.0, help="the peaky scores' spike (logits)")
    args = p.parse_args()
    if ctc_decode.LexiconFreeDecoder is None:
        raise SystemExit("flashlight-text is not installed: pip install flashlight-text")
    print(f"{host()}, {torch.get_num_threads()} threads; beam {args.beam}, T={args.frames}, "
          f"V={args.classes}, peak {args.peak}; median of {args.utterances}")  # fmt: skip
    print(f"{'scores':<8}{'decoder':<14}{'ms/utt':>10}{'log-lik':>12}{'same path':>11}")
    for kind in ("peaky", "flat"):
        rows = {}
        for name, reference in (("flashlight", False), ("ours", True)):
            times, lls, paths = [], [], []
            for seed in range(args.utterances):
                lp = scores(kind, args.frames, args.classes, seed, args.peak)
                start = time.perf_counter()
                path = beam_decode(lp, [args.frames], args.beam, reference=reference)[0]
                times.append(time.perf_counter() - start)
                lls.append(log_likelihood(lp[0], path))
                paths.append(path.tolist())
            rows[name] = (statistics.median(times) * 1e3, statistics.mean(lls), paths)
        same = sum(a == b for a, b in zip(rows["flashlight"][2], rows["ours"][2], strict=True))
        for name, (ms, ll, _) in rows.items():
            print(f"{kind:<8}{name:<14}{ms:>10.1f}{ll:>12.2f}{same:>8}/{args.utterances}")


if __name__ == "__main__":
    main()
