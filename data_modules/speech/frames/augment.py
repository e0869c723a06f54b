"""What ``--data.augment`` does to training windows of the frame DataModule, on the device.

``vtlp: W``: each window's frequency axis warped by ``alpha ~ U[1 - W, 1 + W]`` (cepstra in the
mel domain, normalisation undone); ``mel_hz``: the bands' range. ``freq_mask``, ``time_mask``,
``p``: SpecAugment-style masking. No gain or tilt: per-utterance normalisation removes it."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from data_modules.batches.augment import MEL_RANGE_HZ, mask_frames, vtlp
from data_modules.errors import UserInputError
from data_modules.speech.demo_corpus.features import SAMPLE_RATE

MEL_BANDS = 40  # bands the cepstra are turned back into (inverse DCT) for VTLP
KEYS = ("freq_mask", "time_mask", "p", "vtlp", "mel_hz")
NYQUIST_HZ = SAMPLE_RATE / 2  # the courses' audio is 16 kHz (WSJ, LibriSpeech), as the demo's


class FrameAugment(TypedDict, total=False):
    """``--data.augment``: ``{vtlp: 0.1}``, ``{freq_mask: 8, time_mask: 4, p: 0.5}``, or both."""

    freq_mask: int
    time_mask: int
    p: float
    vtlp: float
    mel_hz: list[float]


def check_augment(augment: FrameAugment | None) -> dict | None:
    """``augment`` checked and completed, or None when it changes nothing."""
    if augment is None:
        return None
    if unknown := sorted(set(augment) - set(KEYS)):
        raise UserInputError(f"augment: unknown key(s) {unknown}; expected some of {list(KEYS)}")
    try:
        spec = {
            "freq_mask": int(augment.get("freq_mask", 0)),
            "time_mask": int(augment.get("time_mask", 0)),
            "p": float(augment.get("p", 1.0)),
            "vtlp": float(augment.get("vtlp", 0.0)),
            "mel_hz": tuple(float(v) for v in augment.get("mel_hz", MEL_RANGE_HZ)),
        }
    except (TypeError, ValueError, OverflowError) as error:  # int(inf): OverflowError
        raise UserInputError(f"augment: {augment}: {error}") from None
    if spec["freq_mask"] < 0 or spec["time_mask"] < 0 or not 0.0 <= spec["p"] <= 1.0:
        raise UserInputError(
            f"augment: {augment} needs freq_mask >= 0, time_mask >= 0 and p in [0, 1]"
        )
    if not 0.0 <= spec["vtlp"] < 1.0:  # NaN too
        raise UserInputError(f"augment: vtlp must be in [0, 1) (e.g. 0.1), got {spec['vtlp']}")
    low_high = spec["mel_hz"]
    if len(low_high) != 2 or not 0.0 <= low_high[0] < low_high[1] <= NYQUIST_HZ:
        raise UserInputError(
            f"augment: mel_hz must be [low, high] in Hz, 0 <= low < high <= {NYQUIST_HZ:g} (the "
            f"Nyquist frequency of {SAMPLE_RATE} Hz audio), got {list(low_high)}"
        )
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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if spec["vtlp"] > 0:
            if self.basis is not None:  # moved once: .to() is a no-op on the same device
                self.basis = self.basis.to(x.device)
                self.scale = None if self.scale is None else self.scale.to(x.device)
            x = vtlp(x, spec["vtlp"], self.basis, self.blocks, self.scale, spec["mel_hz"])
        if spec["p"] > 0 and (spec["freq_mask"] or spec["time_mask"]):
            x = mask_frames(x, spec["freq_mask"], spec["time_mask"], spec["p"])
        return x
