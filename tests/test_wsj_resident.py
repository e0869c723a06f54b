"""Device-resident WSJ frames: the same batches, training and predictions as the memory map."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import data_modules.speech.datamodule as speech_dm
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.frames.memmap import ContextWindowDataset
from data_modules.speech.frames.resident import (
    ResidentWindowDataset,
    padded_sources,
    resident_budget,
)
from lightning_dl.fit import main as fit_main
from tests.helpers.cuda import needs_cuda
from tests.helpers.wsj_corpus import naive_windows, save_split, write_corpus, write_run_corpus

ROOT = Path(__file__).resolve().parents[1]


def _pair(path: Path, **kwargs) -> tuple[SpeechFramesDataModule, SpeechFramesDataModule]:
    memmap = SpeechFramesDataModule(str(path), resident=False, num_workers=0, **kwargs)
    resident = SpeechFramesDataModule(str(path), resident=True, num_workers=0, **kwargs)
    for dm in (memmap, resident):
        dm.setup("fit")
        dm.setup("predict")
    return memmap, resident


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("normalize", ["none", "utterance", "global"])
@pytest.mark.parametrize("pad", ["zero", "edge"])
@pytest.mark.parametrize("k", [0, 4])
def test_resident_gathers_exactly_what_the_memory_map_gathers(tmp_path, k, pad, normalize, dtype):
    corpus = write_corpus(tmp_path)
    memmap, resident = _pair(tmp_path, context=k, pad=pad, normalize=normalize, dtype=dtype)
    assert not memmap.resident and resident.resident
    rng = np.random.default_rng(0)
    for name in ("train", "dev", "test-unlabelled"):
        a, b = memmap.datasets[name], resident.datasets[name]
        assert isinstance(a, ContextWindowDataset) and isinstance(b, ResidentWindowDataset)
        assert len(a) == len(b)
        for ids in (list(range(len(a))), rng.integers(0, len(a), 23).tolist()):  # repeats too
            got, want = b.__getitems__(ids), a.__getitems__(ids)
            assert len(got) == len(want) == (1 if name == "test-unlabelled" else 2)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and g.shape == w.shape
                assert torch.equal(g, w), name  # bit for bit, padding and normalisation included
    if normalize == "none" and dtype == "float32":  # and both are the naive reference
        x = resident.datasets["train"].__getitems__(list(range(len(resident.datasets["train"]))))
        np.testing.assert_array_equal(
            x[0].flatten(1).numpy(), naive_windows(corpus["train"][0], k, pad)
        )


@pytest.mark.parametrize("pad", ["zero", "edge"])
def test_padded_layout_puts_each_window_in_consecutive_rows(pad):
    offsets = np.array([0, 1, 4, 6])  # utterances of 1, 3 and 2 frames
    k = 2
    sources = padded_sources(offsets, k, pad)
    step = k if pad == "zero" else 2 * k
    utterance = np.searchsorted(offsets, np.arange(6), side="right") - 1
    for frame in range(6):
        start, end = offsets[utterance[frame]], offsets[utterance[frame] + 1]
        window = sources[frame + utterance[frame] * step :][: 2 * k + 1]
        wanted = np.arange(frame - k, frame + k + 1)
        if pad == "edge":
            np.testing.assert_array_equal(window, np.clip(wanted, start, end - 1))
        else:
            np.testing.assert_array_equal(
                window, np.where((wanted >= start) & (wanted < end), wanted, -1)
            )


def test_loaders_give_the_same_batches_in_the_same_order(tmp_path):
    write_corpus(tmp_path)
    memmap, resident = _pair(tmp_path, context=3, batch_size=8, normalize="global")
    for loader in ("train_dataloader", "val_dataloader", "predict_dataloader"):
        torch.manual_seed(7)
        a = list(getattr(memmap, loader)())
        torch.manual_seed(7)
        b = list(getattr(resident, loader)())
        assert len(a) == len(b) > 1, loader
        for x, y in zip(a, b, strict=True):
            assert all(torch.equal(s, t) for s, t in zip(x, y, strict=True)), loader
    assert resident.train_dataloader().num_workers == 0
    assert not resident.train_dataloader().pin_memory


_HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "nonzero")


@pytest.mark.parametrize("normalize", ["utterance", "global"])
def test_gather_never_reads_a_tensor_back_to_the_host(tmp_path, monkeypatch, normalize):
    write_corpus(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=4, resident=True, normalize=normalize)
    dm.setup("fit")
    ds = dm.datasets["train"]
    calls: list[str] = []
    for name in _HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for op in ("nonzero", "masked_select", "unique"):  # data-dependent shapes
        monkeypatch.setattr(torch, op, lambda *a, _op=op, **k: calls.append(_op))
    for ids in ([0, 5, 44], list(range(20)), [3] * 9):
        x, y = ds.__getitems__(ids)
        assert x.shape == (len(ids), 9, 40) and y.shape == (len(ids),)
    assert calls == []


@needs_cuda
def test_cuda_gather_is_sync_free(tmp_path):
    write_corpus(tmp_path)
    memmap = SpeechFramesDataModule(str(tmp_path), context=4, resident=False, normalize="global")
    memmap.setup("fit")
    entry, stats = memmap.datasets["train"].entry, memmap.global_stats
    ds = ResidentWindowDataset(entry, 4, "zero", True, stats, torch.device("cuda"))
    ids = list(range(0, 45, 2))
    ds.__getitems__(ids)  # warm-up: allocator, pinned pool
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            x, y = ds.__getitems__(ids)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    want = memmap.datasets["train"].__getitems__(ids)
    assert torch.equal(x.cpu(), want[0]) and torch.equal(y.cpu(), want[1])


def test_auto_holds_frames_on_the_device_only_when_they_fit(tmp_path, monkeypatch):
    write_corpus(tmp_path)
    monkeypatch.setattr(speech_dm, "resident_budget", lambda device, processes=1: 10**12)
    dm = SpeechFramesDataModule(str(tmp_path), context=2)  # resident: auto is the default
    dm.setup("fit")
    assert dm.resident
    monkeypatch.setattr(speech_dm, "resident_budget", lambda device, processes=1: 1000)  # bytes
    dm = SpeechFramesDataModule(str(tmp_path), context=2)
    dm.setup("fit")
    assert not dm.resident
    assert resident_budget(torch.device("meta")) == 0  # unknown devices: never automatically
    assert resident_budget(torch.device("cpu")) > 0  # half the available RAM


# -- whole runs: fit, exact resume and prediction give the same results on both paths ----------
def _run_args(data: list[str], run_dir: Path, resident: bool, *extra: str) -> list[str]:
    return [
        "--config", str(ROOT / "configs" / "wsj_mlp.yaml"), *data,
        "--run.dir", str(run_dir), "--data.resident", str(resident).lower(),
        "--data.batch_size", "16", "--data.context", "2", "--data.normalize", "global",
        "--model.init_args.backbone.init_args.hidden", "[32, 32]",
        "--model.init_args.backbone.init_args.dropout", "0.2",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false", "--trainer.precision", "32-true",
        "--trainer.max_epochs", "-1", "--trainer.max_steps", "30",
        "--trainer.val_check_interval", "10", "--trainer.check_val_every_n_epoch", "null",
        "--run.checkpoint_every_n_steps", "6",
        *extra,
    ]  # fmt: skip


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 30
    return state["state_dict"]


@pytest.fixture(scope="module")
def memmap_run(tmp_path_factory) -> tuple[list[str], Path, dict]:
    root = tmp_path_factory.mktemp("resident_runs")
    data = write_run_corpus(root / "wsj")
    summary = fit_main(_run_args(data, root / "memmap", resident=False))
    return data, root, summary


def test_training_is_identical_on_both_paths(memmap_run):
    data, root, reference = memmap_run
    summary = fit_main(_run_args(data, root / "resident", resident=True))
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "best_val/acc"):
        assert summary[key] == reference[key], key
    a, b = _weights(root / "memmap"), _weights(root / "resident")
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_interrupted_resident_run_resumes_to_the_memmap_result(memmap_run):
    data, root, reference = memmap_run
    run_dir = root / "resumed"
    crash = ("--trainer.callbacks+=tests.helpers.faults.RaiseOnRank",
             "--trainer.callbacks.rank", "0", "--trainer.callbacks.step", "19")  # fmt: skip
    with pytest.raises(RuntimeError, match="injected failure"):
        fit_main(_run_args(data, run_dir, True, *crash))
    summary = fit_main(_run_args(data, run_dir, True, "--ckpt_path", "last"))
    for key in ("val/acc", "test/acc", "test/loss"):
        assert summary[key] == reference[key], key
    a, b = _weights(root / "memmap"), _weights(run_dir)
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_predictions_are_identical_on_both_paths(memmap_run, tmp_path):
    spec = importlib.util.spec_from_file_location("kaggle_predict", ROOT / "kaggle" / "predict.py")
    predict = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(predict)
    data, root, _ = memmap_run
    ckpt = root / "memmap" / "checkpoints" / "best.ckpt"
    outs = []
    for resident in ("true", "false"):
        out = tmp_path / f"{resident}.csv"
        args = ["--ckpt", str(ckpt), "--data-dir", data[1], "--out", str(out)]
        predict.main([*args, "--batch-size", "7", "--resident", resident])
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 1 + 25


def test_more_than_256_classes_are_cached_as_uint16_on_both_paths(tmp_path):
    corpus = write_corpus(tmp_path)
    for split in ("train", "dev"):
        frames, labels = corpus[split]
        save_split(tmp_path, split, frames, [(y * 3) % 300 for y in labels[:-1]] + [labels[-1] * 2])
    memmap, resident = _pair(tmp_path, context=1)
    assert (
        memmap.num_classes > 256 and memmap.datasets["train"].entry.meta["label_dtype"] == "uint16"
    )
    for name in ("train", "dev"):
        ids = list(range(len(memmap.datasets[name])))
        a, b = memmap.datasets[name].__getitems__(ids), resident.datasets[name].__getitems__(ids)
        assert torch.equal(a[1], b[1]) and int(a[1].max()) > 255
