"""Attention-based speech recognition (the HW4P2 Kaggles): an encoder reads the utterance, a
decoder spells its transcript one token at a time.

Built on :class:`~lightning_dl.tasks.ctc.CTCRecognizer` (codes, length checks, examples,
clipping, optimizers). The backbone (``LAS``, ``Transformer``: ``forward`` -> encoder outputs,
``start``, ``step``, ``decode``) gets ``num_classes + 1`` tokens: token 0 starts and ends every
sentence (and is CTC's blank in the joint loss), class ``i`` is token ``i + 1``.

Training: label-smoothed cross-entropy on teacher-forced inputs, a scheduled share of them
replaced by the model's own greedy guesses (``teacher_forcing``: parallel scheduled sampling);
``ctc_weight`` > 0 adds CTC on the encoder (joint CTC-attention). Decoding (greedy for
``val/dist``, beam search with a length penalty for prediction) runs on the device, reading it
every ``CHECK_EVERY`` steps only to stop once every sentence has ended.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_modules.errors import UserInputError
from data_modules.io.atomic import atomic_path
from lightning_dl.models.las import State, padding_mask
from lightning_dl.tasks.ctc import BackboneFactory, CTCRecognizer, ctc_loss

EOS = 0  # also the start token
CHECK_EVERY = 8
ATTENTION_DIR = "attention"


def reorder(state: State, index: torch.Tensor, moving: int) -> State:
    """The state of the beams ``index`` picked; the entries from ``moving`` on (the encoder's,
    the same for every beam of an utterance) stay as they are."""
    return tuple(s.index_select(0, index) if i < moving else s for i, s in enumerate(state))


def greedy_decode(
    model: nn.Module, memory: torch.Tensor, mask: torch.Tensor, steps: int
) -> torch.Tensor:
    """``(B, steps)`` tokens, the most likely one at each step, EOS once a sentence ended."""
    state = model.start(memory, mask)
    tokens = torch.full((len(mask),), EOS, device=mask.device)
    ended, out = torch.zeros_like(mask[:, 0]), []
    for t in range(steps):
        scores, state, _ = model.step(state, tokens)
        tokens = scores.argmax(-1).masked_fill(ended, EOS)
        ended, out = ended | (tokens == EOS), out + [tokens]
        if (t + 1) % CHECK_EVERY == 0 and bool(ended.all()):
            break
    return torch.stack(out, 1)


def beam_decode(
    model: nn.Module,
    memory: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    width: int,
    length_penalty: float,
) -> torch.Tensor:
    """``(B, steps)`` tokens of the best of ``width`` beams by log-probability / length ** a."""
    b, device = len(mask), mask.device
    state = model.start(memory.repeat_interleave(width, 0), mask.repeat_interleave(width, 0))
    scores = torch.full((b, width), -math.inf, device=device)
    scores[:, 0] = 0  # one live beam at first: the others would repeat it
    lengths, ended = torch.zeros_like(scores), torch.zeros_like(scores, dtype=torch.bool)
    tokens = torch.full((b * width,), EOS, device=device)
    history = tokens.new_zeros(b, width, 0)
    offsets = torch.arange(b, device=device)[:, None] * width  # beam k of utterance i: row i*w+k
    for t in range(steps):
        logits, state, _ = model.step(state, tokens)
        log_probs = logits.float().log_softmax(-1).view(b, width, -1)
        frozen = torch.full_like(log_probs[0, 0], -math.inf)
        frozen[EOS] = 0  # an ended beam goes on with EOS at no cost
        log_probs = torch.where(ended[..., None], frozen, log_probs)
        scores, index = (scores[..., None] + log_probs).view(b, -1).topk(width, -1)
        beam, tokens = index // log_probs.shape[-1], index % log_probs.shape[-1]
        was_ended = ended.gather(1, beam)
        lengths, ended = lengths.gather(1, beam) + ~was_ended, was_ended | (tokens == EOS)
        history = torch.cat(
            [history.gather(1, beam[..., None].expand(-1, -1, t)), tokens[..., None]], -1
        )
        state = reorder(state, (beam + offsets).flatten(), model.moving_state)
        tokens = tokens.flatten()
        if (t + 1) % CHECK_EVERY == 0 and bool(ended.all()):
            break
    best = (scores / lengths.clamp(min=1) ** length_penalty).argmax(-1)
    return history[torch.arange(b, device=device), best]


def guided_attention_loss(
    weights: torch.Tensor,
    target_lengths: torch.Tensor,
    source_lengths: torch.Tensor,
    g: float = 0.2,
) -> torch.Tensor:
    """Mean attention cost ``1 - exp(-(l/L - s/S)^2 / 2g^2)`` off the diagonal (Tachibana et al.,
    2018): speech and its transcript advance together, and this prior lets an alignment emerge
    in hundreds of steps instead of thousands. ``(B, L, S)`` weights; padding costs nothing."""
    rows = target_lengths.float()[:, None, None]
    columns = source_lengths.float()[:, None, None]
    l = torch.arange(weights.shape[1], device=weights.device)[None, :, None]  # noqa: E741
    s = torch.arange(weights.shape[2], device=weights.device)[None, None, :]
    cost = 1 - torch.exp(-((l / rows - s / columns) ** 2) / (2 * g * g))
    per_row = (weights.float() * cost * (s < columns)).sum(-1)
    valid = l[..., 0] < rows[..., 0]
    return (per_row * valid).sum() / valid.sum().clamp(min=1)


def sentences(tokens: torch.Tensor) -> list[np.ndarray]:
    """Class indices of each row of decoded tokens, up to its first EOS (one host read)."""
    rows = tokens.cpu().numpy()
    ends = np.where((rows == EOS).any(1), (rows == EOS).argmax(1), rows.shape[1])
    return [row[:n] - 1 for row, n in zip(rows, ends, strict=True)]


class Seq2SeqRecognizer(CTCRecognizer):
    """Utterances -> token sequences; logs ``{train,val,test}/loss`` and ``{val,test}/dist``."""

    def __init__(
        self,
        backbone: BackboneFactory,
        *,
        length_penalty: float = 1.0,
        label_smoothing: float = 0.1,
        teacher_forcing: tuple[float, float] = (1.0, 1.0),
        ctc_weight: float = 0.0,
        guided_attention: float = 0.0,
        max_length_ratio: float = 3.0,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: :class:`CTCRecognizer`'s (``num_classes``, ``optimizer``, ...)."""
        for name, value, ok, expected in [
            ("length_penalty", length_penalty, 0 <= length_penalty < math.inf, "finite, >= 0"),
            ("label_smoothing", label_smoothing, 0 <= label_smoothing < 1, "in [0, 1)"),
            ("teacher_forcing", teacher_forcing, all(0 <= p <= 1 for p in teacher_forcing), "0..1"),
            ("ctc_weight", ctc_weight, 0 <= ctc_weight < 1, "in [0, 1)"),
            ("guided_attention", guided_attention, 0 <= guided_attention < math.inf, ">= 0"),
            ("max_length_ratio", max_length_ratio, 0 < max_length_ratio < math.inf, "finite, > 0"),
        ]:
            if not ok:
                raise UserInputError(f"Seq2SeqRecognizer: {name}={value}, expected {expected}")
        super().__init__(backbone, **kwargs)
        width = self.backbone.encoder_dim
        self.ctc_head = nn.Linear(width, self.hparams.num_classes + 1) if ctc_weight else None
        self.attention_map: np.ndarray | None = None
        self.saved_codes = False

    @property
    def aligns_with_ctc(self) -> bool:  # only the joint loss needs CTC's lengths
        return self.ctc_head is not None

    # -- vocabulary ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        codes = self.codes
        super().setup(stage)
        if self.saved_codes:  # the training vocabulary, whatever the data at hand
            self.codes = codes

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["codes"] = [str(c) for c in self.codes]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "codes" in checkpoint:
            self.codes, self.saved_codes = np.array(checkpoint["codes"]), True

    # -- loss ----------------------------------------------------------------------------------
    def _encode(self, batch: Any) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        memory, lengths = self(batch.x, batch.lengths, batch.host_lengths)
        device_lengths = torch.from_numpy(np.asarray(lengths)).to(memory.device)
        return memory, lengths, padding_mask(device_lengths, memory.shape[1])

    def _teacher_forcing(self) -> float:
        """The share of true inputs now: ``teacher_forcing`` from the first to the last step."""
        first, last = self.hparams.teacher_forcing
        if not self.training or first == last:
            return first if self.training else 1.0
        done = min(self.global_step / max(self.trainer.estimated_stepping_batches, 1), 1.0)
        return first + (last - first) * done

    def _loss(self, batch: Any, decode: bool = False) -> tuple[torch.Tensor, list | None]:
        memory, lengths, mask = self._encode(batch)
        steps = torch.arange(batch.targets.shape[1] + 1, device=memory.device)
        after = steps[None] - batch.target_lengths[:, None]  # 0 at each sentence's end
        gold = F.pad(batch.targets + 1, (0, 1)).masked_fill(after >= 0, EOS)
        inputs = F.pad(gold[:, :-1], (1, 0), value=EOS)
        if (share := self._teacher_forcing()) < 1:
            with torch.no_grad():
                guess = F.pad(self.backbone.decode(memory, mask, inputs)[0].argmax(-1), (1, 0))
            own = torch.rand(inputs.shape, device=inputs.device) >= share
            inputs = torch.where(own & (steps > 0), guess[:, :-1], inputs)
        scores, weights = self.backbone.decode(memory, mask, inputs)
        loss = F.cross_entropy(
            scores.float().flatten(0, 1),
            gold.masked_fill(after > 0, -100).flatten(),
            label_smoothing=self.hparams.label_smoothing,
        )
        if self.hparams.guided_attention and self.training:
            prior = guided_attention_loss(weights, batch.target_lengths + 1, mask.sum(1))
            loss = loss + self.hparams.guided_attention * prior
        if self.ctc_head is not None:
            ctc = ctc_loss(self.ctc_head(memory), lengths, batch.targets, batch.host_target_lengths)
            loss = torch.lerp(loss, ctc, self.hparams.ctc_weight)
        if not decode:
            return loss, None
        if self.trainer.validating and self.attention_map is None:
            n, s = int(batch.host_target_lengths[0]) + 1, int(lengths[0])
            self.attention_map = weights[0, :n, :s].float().cpu().numpy()
        steps = self._max_steps(lengths)
        return loss, sentences(greedy_decode(self.backbone, memory, mask, steps))

    def _max_steps(self, lengths: np.ndarray) -> int:
        return math.ceil(float(np.max(lengths)) * self.hparams.max_length_ratio) + 1

    # -- logging -------------------------------------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        weights, self.attention_map = self.attention_map, None
        root = Path(self.trainer.default_root_dir)
        if self.trainer.sanity_checking or weights is None or not self.trainer.is_global_zero:
            return
        if root.is_dir():
            import matplotlib

            matplotlib.use("Agg")
            from matplotlib import pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
            ax.imshow(weights, aspect="auto", origin="lower", cmap="viridis")
            ax.set(xlabel="encoder step", ylabel="output token", title=f"step {self.global_step}")
            path = root / ATTENTION_DIR / f"step_{self.global_step:07d}.png"
            with atomic_path(path) as tmp:  # a reader never sees half a PNG
                fig.savefig(tmp, format="png", dpi=80, bbox_inches="tight")
            plt.close(fig)
            for logger in self.trainer.loggers:
                if hasattr(logger, "log_image"):  # wandb
                    logger.log_image("val/attention", [str(path)], step=self.global_step)

    # -- prediction ----------------------------------------------------------------------------
    def _decode(self, batch: Any) -> tuple[list[np.ndarray], int]:
        memory, lengths, mask = self._encode(batch)
        steps, width = self._max_steps(lengths), self.hparams.beam_width
        if width == 1:
            return sentences(greedy_decode(self.backbone, memory, mask, steps)), steps
        tokens = beam_decode(self.backbone, memory, mask, steps, width, self.hparams.length_penalty)
        return sentences(tokens), steps
