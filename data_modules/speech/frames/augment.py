"""What ``--data.augment`` does to training windows of the frame DataModule, on the device.

Two augmentations, each drawn per window from the device's default generator (which exact resume
reseeds before every training batch), applied to training batches only:

* ``vtlp: W``: vocal-tract-length perturbation (Jaitly & Hinton, 2013), a warp of the frequency
  axis by ``alpha ~ U[1 - W, 1 + W]`` (the paper: W = 0.1), the same for all frames of a window
  (:func:`data_modules.batches.augment.vtlp`). Per window rather than per utterance: a batch gathers
  windows of random frames, so a per-utterance draw would only correlate the draws of windows
  of one utterance, which a frame classifier sees independently anyway. Log-mel layouts (Kaggle
  WSJ) are warped along the bands; cepstral ones in the mel domain through the inverse DCT
  (LibriSpeech's cepstra; libriphone's 13 cepstra with deltas and delta-deltas, the same warp in
  each of the three blocks since deltas are linear in time). ``mel_hz: [low, high]`` is the
  bands' frequency range (default 20-8000 Hz, Kaldi's and the demo corpus's). The number of mel
  bands the cepstra came from hardly matters: the inverse DCT is a smooth envelope, sampled
  here at 40 bands, and the forward DCT gives the same low cepstra back (cepstra are assumed
  unliftered). Cepstra normalised per dimension are scaled back by the training split's raw
  standard deviation before the warp and normalised again after it (exact for ``global``, the
  typical scale for ``utterance``). Measured on held-out voices of the demo corpus (README,
  *Measured results*): it helps when the training voices are few, not with many.
* ``freq_mask``, ``time_mask``, ``p``: SpecAugment-style masking
  (:func:`data_modules.batches.augment.mask_frames`), after the warp.

Left out, and why: a random per-band gain or spectral tilt per utterance is removed exactly by
per-utterance normalisation (the default), so under it such an augmentation shows the model
inputs that never occur; speaker-level normalisation needs speaker labels at test time, which
the courses' test sets do not all give, and per-utterance normalisation already removes the
speaker's (and channel's) mean spectrum.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from data_modules.batches.augment import MEL_RANGE_HZ, mask_frames, vtlp
from data_modules.errors import UserInputError

MEL_BANDS = 40  # bands the cepstra are turned back into (see the module docstring)
KEYS = ("freq_mask", "time_mask", "p", "vtlp", "mel_hz")


class FrameAugment(TypedDict, total=False):
    """``--data.augment``: ``{vtlp: 0.1}``, ``{freq_mask: 8, time_mask: 4, p: 0.5}``, or both."""

    freq_mask: int
    time_mask: int
    p: float
    vtlp: float
    mel_hz: list[float]


FrameMasking = FrameAugment  # the name the dict had when it only masked


def check_augment(augment: FrameAugment | None) -> dict | None:
    """``augment`` checked and completed, or None when it changes nothing."""
    if augment is None:
        return None
    unknown = sorted(set(augment) - set(KEYS))
    if unknown:
        raise UserInputError(f"augment: unknown key(s) {unknown}; expected some of {list(KEYS)}")
    try:
        spec = {
            "freq_mask": int(augment.get("freq_mask", 0)),
            "time_mask": int(augment.get("time_mask", 0)),
            "p": float(augment.get("p", 1.0)),
            "vtlp": float(augment.get("vtlp", 0.0)),
            "mel_hz": tuple(float(v) for v in augment.get("mel_hz", MEL_RANGE_HZ)),
        }
    except (TypeError, ValueError) as error:
        raise UserInputError(f"augment: {augment}: {error}") from None
    if spec["freq_mask"] < 0 or spec["time_mask"] < 0 or not 0.0 <= spec["p"] <= 1.0:
        raise UserInputError(
            f"augment: {augment} needs freq_mask >= 0, time_mask >= 0 and p in [0, 1]"
        )
    if not 0.0 <= spec["vtlp"] < 1.0:
        raise UserInputError(f"augment: vtlp must be in [0, 1) (e.g. 0.1), got {spec['vtlp']}")
    low_high = spec["mel_hz"]
    if len(low_high) != 2 or not 0.0 <= low_high[0] < low_high[1]:
        raise UserInputError(f"augment: mel_hz must be [low, high] in Hz, got {list(low_high)}")
    masks = spec["p"] > 0 and (spec["freq_mask"] or spec["time_mask"])
    return spec if masks or spec["vtlp"] > 0 else None


def cepstral_layout(fmt: str, feature_dim: int) -> tuple[np.ndarray | None, int]:
    """(DCT basis ``(MEL_BANDS, C)`` or None for log-mel bands, blocks of C in a frame)."""
    from data_modules.speech.demo_corpus.features import dct_matrix  # numpy only

    if fmt == "librispeech":
        return dct_matrix(MEL_BANDS, feature_dim), 1
    if fmt == "libriphone":
        if feature_dim % 3:
            raise UserInputError(
                f"augment: vtlp on libriphone features needs cepstra, deltas and delta-deltas "
                f"(a multiple of 3 features), got {feature_dim}"
            )
        return dct_matrix(MEL_BANDS, feature_dim // 3), 3
    return None, 1


class FrameAugmenter:
    """Applies a checked ``augment`` spec to a training batch of windows ``(B, 2k+1, D)``."""

    def __init__(
        self, spec: dict, fmt: str, feature_dim: int, raw_var: np.ndarray | None = None
    ) -> None:
        self.spec = spec
        basis, self.blocks = cepstral_layout(fmt, feature_dim) if spec["vtlp"] > 0 else (None, 1)
        self.basis = None if basis is None else torch.from_numpy(basis).float()
        self.scale = None
        if self.basis is not None and raw_var is not None:  # undo per-dimension normalisation
            self.scale = torch.from_numpy(np.sqrt(np.maximum(raw_var, 1e-12))).float()

    def _to(self, device: torch.device) -> None:
        if self.basis is not None and self.basis.device != device:
            self.basis = self.basis.to(device)
        if self.scale is not None and self.scale.device != device:
            self.scale = self.scale.to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec["vtlp"] > 0:
            self._to(x.device)
            x = vtlp(x, spec["vtlp"], self.basis, self.blocks, self.scale, spec["mel_hz"])
        if spec["p"] > 0 and (spec["freq_mask"] or spec["time_mask"]):
            x = mask_frames(x, spec["freq_mask"], spec["time_mask"], spec["p"])
        return x
