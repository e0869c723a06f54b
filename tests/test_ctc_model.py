"""The CTC backbone and loss: lengths honoured everywhere, impossible sequences never zeroed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lightning_dl.models.conv_bilstm import ConvBiLSTM, MaskedBatchNorm1d
from lightning_dl.tasks.ctc import ctc_loss


def test_masked_batchnorm_statistics_ignore_padding():
    torch.manual_seed(0)
    norm = MaskedBatchNorm1d(3, momentum=1.0)
    x = torch.randn(2, 3, 10)
    mask = (torch.arange(10) < torch.tensor([10, 4])[:, None])[:, None, :]
    padded = torch.where(mask, x, torch.full_like(x, 1e3))  # garbage in the padding
    y = norm(padded, mask)
    valid = torch.cat([x[0], x[1, :, :4]], dim=1)  # (3, 14) frames inside the utterances
    torch.testing.assert_close(norm.running_mean, valid.mean(1))
    torch.testing.assert_close(norm.running_var, valid.var(1))
    inside = torch.cat([y[0], y[1, :, :4]], dim=1)
    torch.testing.assert_close(inside.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    assert float(y[1, :, 4:].detach().abs().sum()) == 0.0


def test_backbone_outputs_ignore_padding_and_match_a_packed_torch_bilstm():
    torch.manual_seed(0)
    model = ConvBiLSTM(6, 5, channels=[8], stride=2, hidden=4, layers=2).eval()
    lengths = np.array([20, 13, 5])
    x = torch.randn(3, 20, 6)
    scores, out = model(x, torch.from_numpy(lengths), lengths)
    assert out.tolist() == [10, 7, 3] and scores.shape == (3, 10, 5)
    noisy = x.clone()
    noisy[1, 13:] = 100.0
    noisy[2, 5:] = -100.0
    again, _ = model(noisy, torch.from_numpy(lengths), lengths)
    for b, n in enumerate(out):
        torch.testing.assert_close(again[b, :n], scores[b, :n])
    model.lstm.packed = True
    packed, _ = model(x, torch.from_numpy(lengths), lengths)
    for b, n in enumerate(out):
        torch.testing.assert_close(packed[b, :n], scores[b, :n])
    # the first layer against torch's own bidirectional LSTM over a PackedSequence
    lstm = model.lstm
    reference = torch.nn.LSTM(8, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, value in lstm.forward_lstms[0].named_parameters():
            getattr(reference, name).copy_(value)
            getattr(reference, f"{name}_reverse").copy_(
                dict(lstm.backward_lstms[0].named_parameters())[name]
            )
    h = torch.randn(3, 10, 8)
    packed_in = pack_padded_sequence(
        h, torch.from_numpy(out), batch_first=True, enforce_sorted=False
    )
    expected = pad_packed_sequence(reference(packed_in)[0], batch_first=True)[0]
    single = torch.nn.Module()
    lstm.forward_lstms, lstm.backward_lstms = lstm.forward_lstms[:1], lstm.backward_lstms[:1]
    lstm.packed = False
    mine = lstm(h, torch.from_numpy(out), out)
    for b, n in enumerate(out):
        torch.testing.assert_close(mine[b, :n], expected[b, :n])
    del single


def test_ctc_loss_is_finite_for_possible_and_infinite_for_impossible_sequences():
    scores = torch.randn(2, 6, 4, requires_grad=True)
    targets = torch.tensor([[0, 1, 2], [1, 1, 0]])
    # utterance 1 repeats a phoneme: it needs 3 labels + 1 blank between the repeats = 4 frames
    finite = ctc_loss(scores, np.array([6, 4]), targets, np.array([3, 3]))
    assert math.isfinite(float(finite))
    impossible = ctc_loss(scores, np.array([6, 3]), targets, np.array([3, 3]))
    assert float(impossible) == math.inf  # never zeroed: the NaN guard stops the run
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = ctc_loss(scores.bfloat16(), np.array([6, 4]), targets, np.array([3, 3]))
    assert under_autocast.dtype == torch.float32


@pytest.mark.parametrize("kernel, stride", [(5, 1), (5, 2), (3, 3)])
def test_output_lengths_match_the_convolution(kernel, stride):
    model = ConvBiLSTM(4, 3, channels=[4], kernel_size=kernel, stride=stride, hidden=2, layers=1)
    for n in (1, 2, 7, 8, 31):
        x = torch.randn(1, n, 4)
        scores, out = model(x, torch.tensor([n]), np.array([n]))
        assert scores.shape[1] == out[0] == model.output_lengths(np.array([n]))[0]


def test_ctc_plateau_steps_per_validation_and_a_resume_says_what_changed(tmp_path, caplog):
    """The Classifier's optimizer plumbing (tasks.optim.ConfiguredOptimizer), for CTC too."""
    from lightning_dl.fit import main
    from tests.helpers.ctc_corpus import write_wsj
    from tests.helpers.tiny_runs import ROOT

    run = tmp_path / "run"
    args = [
        "--config", str(ROOT / "configs" / "wsj_ctc.yaml"),
        "--data.data_dir", str(write_wsj(tmp_path / "d")), "--data.source", "auto",
        "--run.dir", str(run), "--trainer.accelerator", "cpu", "--trainer.precision", "32-true",
        "--trainer.val_check_interval", "4", "--trainer.log_every_n_steps", "4",
        "--trainer.logger", "null", "--trainer.enable_progress_bar", "false",
        "--model.backbone.init_args.channels", "[8]", "--model.backbone.init_args.hidden", "8",
        "--model.backbone.init_args.layers", "1", "--model.backbone.init_args.stride", "1",
        "--model.lr_scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "--model.lr_scheduler.factor", "0.5", "--model.lr_scheduler.patience", "0",
        "--model.lr_scheduler.threshold", "0.99",  # every validation after the first is worse
        "--data.batch_size", "6", "--data.augment", "null",
    ]  # fmt: skip
    main([*args, "--trainer.max_steps", "13", "--model.optimizer.lr", "0.01"])
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # step 13
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01 / 4)
    with caplog.at_level("INFO"):
        main([*args, "--trainer.max_steps", "16", "--model.optimizer.lr", "0.02",
              "--ckpt_path", "last"])  # fmt: skip
    assert "lr 0.01 -> 0.02 (group 0)" in caplog.text
