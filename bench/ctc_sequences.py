"""HW3P2 (CTC) speed: training throughput with and without length bucketing, and decode time.

Table 1, utterances/s of training steps (forward, CTC loss, backward, AdamW) over the same
training utterances, and the share of each padded batch that is padding:

* ``ours, bucketed``: UtteranceSequencesDataModule's loader (BucketSampler) + ConvBiLSTM
  (lengths honoured by reversing each utterance within its length);
* ``ours, no bucketing``: the same with ``bucket_pool: 0`` (a seeded shuffle);
* ``plain PyTorch``: the HW3P2 starter's way, the reference: a DataLoader over per-utterance
  tensors with ``pad_sequence`` collation, shuffled, and the same layer sizes with
  ``nn.LSTM(bidirectional=True)`` over ``pack_padded_sequence``.

Table 2, decode time per utterance of the dev set's model scores (``--ckpt``: a trained
CTCRecognizer checkpoint, whose peaked scores are what decoding meets in practice; without it
an untrained model, the worst case for beam search): our greedy decoder (one argmax on the
device, one read), our prefix beam search at widths 4 and 16, and a plain-PyTorch greedy reference
(argmax, then ``itertools.groupby`` per utterance).

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/ctc_sequences.py \
        --data-dir data/librispeech_ctc_demo --steps 8
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from data_modules.batches.bucketing import padding_fraction
from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from lightning_dl.models.conv_bilstm import ConvBiLSTM
from lightning_dl.tasks.ctc import ctc_loss
from lightning_dl.tasks.ctc_decode import greedy_decode, prefix_beam_search

SIZES = {"channels": [128], "kernel_size": 5, "stride": 2, "hidden": 128, "layers": 2}


class PlainModel(nn.Module):
    """The reference: Conv1d-BN-GELU (padding counted in the statistics), packed BiLSTM, head."""

    def __init__(self, dim: int, outputs: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(dim, 128, 5, 2, padding=2), nn.BatchNorm1d(128), nn.GELU()
        )
        self.lstm = nn.LSTM(128, 128, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(256, outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out = (lengths - 1) // 2 + 1
        packed = pack_padded_sequence(h, out, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        return self.head(h), out


def time_ours(dm: UtteranceSequencesDataModule, steps: int, classes: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = ConvBiLSTM(dm.inventory.feature_dim, classes + 1, **SIZES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = dm.train_dataloader()
    lengths = dm.datasets["train"].lengths
    batches, seen, start = [], 0, None
    for i, batch in enumerate(itertools.islice(itertools.cycle(loader), steps + 2)):
        if i == 2:
            start, seen = time.perf_counter(), 0  # two warm-up steps
        scores, out = model(batch.x, batch.lengths, batch.host_lengths)
        loss = ctc_loss(scores, out, batch.targets, batch.host_target_lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(batch.host_lengths)
    for indices in loader.batch_sampler:
        batches.append(list(indices))
    return seen / (time.perf_counter() - start), padding_fraction(lengths, batches)


def time_plain(dm: UtteranceSequencesDataModule, steps: int, classes: int, batch: int):
    ds = dm.datasets["train"]
    frames = [ds.frames[s : s + n] for s, n in zip(ds.starts, ds.lengths, strict=True)]
    spans = zip(ds.target_starts, ds.target_lengths, strict=True)
    targets = [ds.targets[s : s + n] for s, n in spans]

    def collate(items):
        xs, ys = zip(*items, strict=True)
        return (pad_sequence(xs, batch_first=True), torch.tensor([len(x) for x in xs]),
                pad_sequence(ys, batch_first=True), torch.tensor([len(y) for y in ys]))  # fmt: skip

    loader = torch.utils.data.DataLoader(
        list(zip(frames, targets, strict=True)), batch_size=batch, shuffle=True, collate_fn=collate
    )
    torch.manual_seed(0)
    model = PlainModel(ds.frames.shape[1], classes + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctc = nn.CTCLoss()
    seen, start, batches = 0, None, []
    for i, (x, n, y, m) in enumerate(itertools.islice(itertools.cycle(loader), steps + 2)):
        if i == 2:
            start, seen = time.perf_counter(), 0
        scores, out = model(x, n)
        loss = ctc(scores.log_softmax(-1).transpose(0, 1), y + 1, out, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(n)
    order = list(torch.utils.data.RandomSampler(range(len(frames))))
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    return seen / (time.perf_counter() - start), padding_fraction(ds.lengths, batches)


def time_decoding(
    dm: UtteranceSequencesDataModule, classes: int, utterances: int, ckpt: str | None
):
    torch.manual_seed(0)
    if ckpt:
        from lightning_dl.tasks.ctc import CTCRecognizer

        model = CTCRecognizer.load_from_checkpoint(ckpt, map_location="cpu").backbone.eval()
    else:
        model = ConvBiLSTM(dm.inventory.feature_dim, classes + 1, **SIZES).eval()
    loader = dm.val_dataloader()
    outputs = []
    with torch.no_grad():
        for batch in loader:
            scores, out = model(batch.x, batch.lengths, batch.host_lengths)
            outputs.append((scores.log_softmax(-1), out))
    n = sum(len(o) for _, o in outputs)
    rows = []

    def per_utterance(fn, repeats: int = 5) -> float:
        fn()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / (repeats * n) * 1e3

    rows.append(("ours, greedy", per_utterance(lambda: [greedy_decode(s, o) for s, o in outputs])))

    def plain_greedy():
        for scores, out in outputs:
            best = scores.argmax(-1)
            for b, length in enumerate(out):
                path = best[b, :length].tolist()
                [k for k, _ in itertools.groupby(path) if k != 0]

    rows.append(("plain PyTorch greedy (reference)", per_utterance(plain_greedy)))
    some = [(s[b, : o[b]].numpy(), b) for s, o in outputs for b in range(len(o))][:utterances]
    for width in (4, 16):
        start = time.perf_counter()
        for scores, _ in some:
            prefix_beam_search(scores, width)
        rows.append((f"ours, beam {width}", (time.perf_counter() - start) / len(some) * 1e3))
    return n, rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data/librispeech_ctc_demo")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--beam-utterances", type=int, default=20)
    p.add_argument("--ckpt", default=None, help="trained CTCRecognizer for the decode table")
    p.add_argument("--decode-only", action="store_true", help="skip the training table")
    args = p.parse_args()
    print(f"training, {args.steps} steps of {args.batch_size} utterances "
          f"({torch.get_num_threads()} threads)", flush=True)  # fmt: skip
    print(f"{'loop':<30}{'utt/s':>10}{'padding':>10}", flush=True)
    rows = []
    for pool in () if args.decode_only else (32, 0):
        dm = UtteranceSequencesDataModule(
            args.data_dir, batch_size=args.batch_size, bucket_pool=pool, resident=False
        )
        dm.setup("fit")
        rate, pad = time_ours(dm, args.steps, dm.num_classes)
        rows.append((f"ours, {'bucketed' if pool else 'no bucketing'}", rate, pad))
        print(f"{rows[-1][0]:<30}{rate:>10.2f}{pad:>10.3f}", flush=True)
    if args.decode_only:
        dm = UtteranceSequencesDataModule(args.data_dir, batch_size=args.batch_size)
        dm.setup("fit")
    else:
        rate, pad = time_plain(dm, args.steps, dm.num_classes, args.batch_size)
        rows.append(("plain PyTorch (reference)", rate, pad))
        print(f"{rows[-1][0]:<30}{rate:>10.2f}{pad:>10.3f}", flush=True)
        for name, rate, _ in rows[:-1]:
            print(f"{name} / reference: {rate / rows[-1][1]:.2f}x")
    n, decode = time_decoding(dm, dm.num_classes, args.beam_utterances, args.ckpt)
    print(f"\ndecoding the {n} dev utterances (beam: the first {args.beam_utterances})")
    print(f"{'decoder':<34}{'ms/utt':>10}")
    for name, ms in decode:
        print(f"{name:<34}{ms:>10.3f}")


if __name__ == "__main__":
    main()
