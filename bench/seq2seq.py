"""HW4P2 (attention) speed: LAS training throughput against a plain-PyTorch LAS, and decode time.

Table 1, utterances/s of training steps (forward, cross-entropy with label smoothing, backward,
AdamW) with the same layer sizes, interleaved step by step in one process so that both meet the
same host load:

* ``ours``: UtteranceSequencesDataModule's bucketed loader + Seq2SeqRecognizer's loss over
  :class:`lightning_dl.models.las.LAS` (lengths honoured by reversing each utterance within its
  length, teacher forcing);
* ``plain PyTorch``: the usual HW4P2 starter, the reference: a shuffled DataLoader with
  ``pad_sequence`` collation, a pBLSTM of ``nn.LSTM(bidirectional=True)`` over
  ``pack_padded_sequence``, an ``nn.LSTMCell`` speller with dot-product attention.

Table 2, decode time per dev utterance (``--ckpt``: a trained Seq2SeqRecognizer; without it
untrained models, which rarely emit the end token and so decode for the whole length): our
batched greedy and beam search (widths 4 and 8) for LAS and the Transformer, and a plain
per-utterance greedy loop that reads the device every step (the reference).

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/seq2seq.py --data-dir data/wsj_ctc_demo --steps 10
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence

from data_modules.speech.sequences.datamodule import UtteranceSequencesDataModule
from lightning_dl.models.las import LAS
from lightning_dl.models.transformer import Transformer
from lightning_dl.tasks.seq2seq import Seq2SeqRecognizer, beam_decode, greedy_decode

SIZES = {"hidden": 128, "pyramid": 2, "speller_hidden": 256, "speller_layers": 1}


class PlainLAS(nn.Module):
    """The reference: packed pBLSTM listener, LSTMCell speller, dot-product attention."""

    def __init__(self, dim: int, vocab: int, hidden: int = 128, speller: int = 256) -> None:
        super().__init__()
        self.lstms = nn.ModuleList(
            [nn.LSTM(dim, hidden, bidirectional=True, batch_first=True)]
            + [nn.LSTM(4 * hidden, hidden, bidirectional=True, batch_first=True) for _ in range(2)]
        )
        self.key, self.value = nn.Linear(2 * hidden, 128), nn.Linear(2 * hidden, 128)
        self.embed, self.cell = nn.Embedding(vocab, speller), nn.LSTMCell(speller + 128, speller)
        self.query, self.head = nn.Linear(speller, 128), nn.Linear(speller + 128, vocab)

    def listen(self, x: torch.Tensor, lengths: torch.Tensor):
        for i, lstm in enumerate(self.lstms):
            if i:
                x, lengths = (
                    x[:, : x.shape[1] // 2 * 2].reshape(len(x), -1, 2 * x.shape[2]),
                    lengths // 2,
                )
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            x = pad_packed_sequence(lstm(packed)[0], batch_first=True)[0]
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]
        return self.key(x), self.value(x), mask

    def step(self, keys, values, mask, token, h, c, context):
        h, c = self.cell(torch.cat([self.embed(token), context], -1), (h, c))
        energy = (keys @ self.query(h)[:, :, None]).squeeze(-1) / 128**0.5
        weights = energy.masked_fill(~mask, -1e9).softmax(-1)
        context = (weights[:, None] @ values).squeeze(1)
        return self.head(torch.cat([h, context], -1)), h, c, context

    def forward(self, x, lengths, inputs):
        keys, values, mask = self.listen(x, lengths)
        h = c = keys.new_zeros(len(x), self.cell.hidden_size)
        context, scores = values.new_zeros(len(x), 128), []
        for t in range(inputs.shape[1]):
            s, h, c, context = self.step(keys, values, mask, inputs[:, t], h, c, context)
            scores.append(s)
        return torch.stack(scores, 1)


def plain_loader(dm: UtteranceSequencesDataModule, batch: int):
    ds = dm.datasets["train"]
    frames = [ds.frames[s : s + n] for s, n in zip(ds.starts, ds.lengths, strict=True)]
    spans = zip(ds.target_starts, ds.target_lengths, strict=True)
    eos = torch.tensor([0])
    targets = [torch.cat([ds.targets[s : s + n] + 1, eos]) for s, n in spans]  # then EOS

    def collate(items):
        xs, ys = zip(*items, strict=True)
        y = pad_sequence(ys, batch_first=True, padding_value=-100)
        inputs = F.pad(y[:, :-1].clamp(min=0), (1, 0))
        return pad_sequence(xs, batch_first=True), torch.tensor([len(x) for x in xs]), inputs, y

    data = list(zip(frames, targets, strict=True))
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, collate_fn=collate)


def time_training(dm: UtteranceSequencesDataModule, steps: int, batch: int) -> dict[str, float]:
    torch.manual_seed(0)
    dim, vocab = dm.inventory.feature_dim, dm.num_classes + 1
    ours = Seq2SeqRecognizer(lambda d, v: LAS(d, v, **SIZES, attention="dot", dropout=0.0),
                             num_classes=dm.num_classes, input_shape=(dim,))  # fmt: skip
    plain = PlainLAS(dim, vocab)
    opts = {
        k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in (("ours", ours), ("plain", plain))
    }
    ours_batches = itertools.cycle(dm.train_dataloader())
    plain_batches = itertools.cycle(plain_loader(dm, batch))
    seconds, seen = {"ours": 0.0, "plain": 0.0}, {"ours": 0, "plain": 0}
    for i in range(steps + 1):  # the first step of each is a warm-up
        for name in ("ours", "plain"):
            start = time.perf_counter()
            if name == "ours":
                b = next(ours_batches)
                loss, n = ours._loss(b)[0], len(b.host_lengths)
            else:
                x, lengths, inputs, y = next(plain_batches)
                scores = plain(x, lengths, inputs)
                loss = F.cross_entropy(scores.flatten(0, 1), y.flatten(), label_smoothing=0.1)
                n = len(lengths)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if i:
                seconds[name] += time.perf_counter() - start
                seen[name] += n
    return {k: seen[k] / seconds[k] for k in seconds}


def time_decoding(dm: UtteranceSequencesDataModule, ckpt: str | None, utterances: int):
    torch.manual_seed(0)
    dim, vocab = dm.inventory.feature_dim, dm.num_classes + 1
    if ckpt:
        model = Seq2SeqRecognizer.load_from_checkpoint(ckpt, map_location="cpu").backbone
        models = {type(model).__name__: model}
    else:
        models = {
            "LAS": LAS(dim, vocab, **SIZES),
            "Transformer": Transformer(dim, vocab, dim=128, encoder_layers=4, decoder_layers=2),
        }
    batches = list(
        itertools.islice(dm.val_dataloader(), max(1, utterances // dm.hparams.batch_size))
    )
    n = sum(len(b.host_lengths) for b in batches)
    rows = []
    for name, model in models.items():
        model.eval()
        encoded = []
        with torch.no_grad():
            for b in batches:
                memory, lengths = model(b.x, b.lengths, b.host_lengths)
                mask = torch.arange(memory.shape[1])[None] < torch.from_numpy(lengths)[:, None]
                encoded.append((memory, mask, int(lengths.max())))
            for width in (1, 4, 8):
                start = time.perf_counter()
                for memory, mask, steps in encoded:
                    if width == 1:
                        greedy_decode(model, memory, mask, steps)
                    else:
                        beam_decode(model, memory, mask, steps, width, 1.0)
                decoder = "greedy" if width == 1 else f"beam {width}"
                rows.append((f"ours {name}, {decoder}", (time.perf_counter() - start) / n * 1e3))
            if name == "LAS":
                start = time.perf_counter()
                for memory, mask, steps in encoded:
                    for u in range(len(memory)):  # one utterance at a time, a host read a step
                        state = model.start(memory[u : u + 1], mask[u : u + 1])
                        token = torch.zeros(1, dtype=torch.long)
                        for _ in range(steps):
                            scores, state, _ = model.step(state, token)
                            token = scores.argmax(-1)
                            if token.item() == 0:
                                break
                rows.append(
                    ("plain LAS greedy (reference)", (time.perf_counter() - start) / n * 1e3)
                )
    return n, rows


def host() -> str:
    """The CPU, threads and bf16 support (what decides whether bf16 autocast pays)."""
    with open("/proc/cpuinfo") as f:
        info = f.read()
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in info.split()] or ["none"]
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line]
    name = names[0] if names else platform.machine()
    return f"{name}, {torch.get_num_threads()} threads, bf16: {'+'.join(bf16)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="data/wsj_ctc_demo")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--decode-utterances", type=int, default=32)
    p.add_argument("--ckpt", default=None, help="trained Seq2SeqRecognizer for the decode table")
    args = p.parse_args()
    print(f"host: {host()}, torch {torch.__version__}")
    dm = UtteranceSequencesDataModule(args.data_dir, batch_size=args.batch_size, resident=False)
    dm.setup("fit")
    rates = time_training(dm, args.steps, args.batch_size)
    print(f"\ntraining, {args.steps} interleaved steps of {args.batch_size} utterances each")
    print(f"{'loop':<34}{'utt/s':>10}")
    print(f"{'ours (Seq2SeqRecognizer, LAS)':<34}{rates['ours']:>10.2f}")
    print(f"{'plain PyTorch LAS (reference)':<34}{rates['plain']:>10.2f}")
    print(f"ours / reference: {rates['ours'] / rates['plain']:.2f}x")
    n, rows = time_decoding(dm, args.ckpt, args.decode_utterances)
    print(f"\ndecoding {n} dev utterances ({'trained' if args.ckpt else 'untrained'} models)")
    print(f"{'decoder':<38}{'ms/utt':>10}")
    for name, ms in rows:
        print(f"{name:<38}{ms:>10.2f}")


if __name__ == "__main__":
    main()
