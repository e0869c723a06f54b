"""``--data.augment``'s speaker warp (VTLP) in the frame DataModule: training batches only, the
layout's feature kind (log-mel bands, cepstra, cepstra with deltas), and one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from pytorch_lightning import Trainer
from pytorch_lightning.trainer.states import RunningStage

from data_modules.batches.augment import warp_windows
from data_modules.errors import UserInputError
from data_modules.speech.frames.augment import FrameAugmenter, check_augment
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from tests.helpers.wsj_corpus import write_run_corpus


def test_vtlp_changes_training_batches_only(tmp_path):
    data = write_run_corpus(tmp_path / "wsj")
    dm = SpeechFramesDataModule(data[1], context=2, source="kaggle", augment={"vtlp": 0.2})
    dm.trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    dm.setup("fit")
    batch = dm.datasets["train"].__getitems__(list(range(32)))
    for stage in (RunningStage.SANITY_CHECKING, RunningStage.VALIDATING, RunningStage.TESTING,
                  RunningStage.PREDICTING):  # fmt: skip
        dm.trainer.state.stage = stage
        out = dm.on_after_batch_transfer(batch, 0)
        assert out[0] is batch[0] and out[1] is batch[1], stage
    dm.trainer.state.stage = RunningStage.TRAINING
    x, y = dm.on_after_batch_transfer(batch, 0)
    assert x.shape == batch[0].shape and x.dtype == batch[0].dtype and y is batch[1]
    assert not torch.equal(x, batch[0])
    assert dm.augmenter.basis is None  # Kaggle WSJ: log-mel bands, warped along the bands


@pytest.mark.parametrize(("fmt", "dim", "blocks"), [("librispeech", 28, 1), ("libriphone", 39, 3)])
def test_cepstral_layouts_warp_in_the_mel_domain(fmt, dim, blocks):
    raw_var = np.linspace(4.0, 0.25, dim)
    augmenter = FrameAugmenter(check_augment({"vtlp": 0.1}), fmt, dim, raw_var)
    assert augmenter.basis.shape == (40, dim // blocks) and augmenter.blocks == blocks
    torch.testing.assert_close(augmenter.scale**2, torch.from_numpy(raw_var).float())
    # A smooth log-mel envelope's cepstra, normalised per dimension as the cache holds them:
    # warping them equals warping the envelope itself and taking its cepstra.
    bands = torch.linspace(0, 1, 40)
    envelope = torch.stack([torch.exp(-(((bands - c) / 0.15) ** 2)) for c in (0.3, 0.5)])
    ceps = envelope @ augmenter.basis  # (2, C)
    x = (ceps.repeat(1, blocks) / augmenter.scale)[:, None, :].expand(2, 3, dim)  # 3 frames
    alpha = torch.tensor([0.9, 1.1])
    got = warp_windows(x, alpha, augmenter.basis, blocks, augmenter.scale)
    want = warp_windows(envelope[:, None, :], alpha) @ augmenter.basis  # warped, then DCT
    want = want.repeat(1, 1, blocks) / augmenter.scale
    torch.testing.assert_close(got, want.expand(2, 3, dim), atol=2e-3, rtol=0)
    assert (got - x).abs().max() > 0.05  # and the warp did something


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ({"vtlp": 1.5}, "vtlp must be in [0, 1)"),
        ({"vtlps": 0.1}, "unknown key(s) ['vtlps']"),
        ({"vtlp": 0.1, "mel_hz": [8000, 20]}, "mel_hz must be [low, high]"),
        ({"vtlp": 0.1, "mel_hz": [20, float("inf")]}, "high <= 8000 (the Nyquist frequency"),
        ({"vtlp": 0.1, "mel_hz": [float("nan"), 8000]}, "mel_hz must be [low, high]"),
        ({"vtlp": 0.1, "mel_hz": [20, 11025]}, "got [20.0, 11025.0]"),
        ({"vtlp": float("nan")}, "vtlp must be in [0, 1)"),
        ({"freq_mask": float("inf")}, "augment: {'freq_mask': inf}"),
        ({"time_mask": 2, "p": float("nan")}, "p in [0, 1]"),
    ],
)
def test_bad_augment_is_one_clear_error(augment, message):
    with pytest.raises(UserInputError, match=re.escape(message)) as error:
        check_augment(augment)
    assert "\n" not in str(error.value)
    assert check_augment({"vtlp": 0.0}) is None  # changes nothing: no augmenter at all
