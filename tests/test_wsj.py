"""WSJ frames: context windows vs a naive reference, cache reuse/rebuild, loaders, state."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities.data import _is_dataloader_shuffled

from data_modules.speech.frames.cache import build_or_load
from data_modules.speech.frames.datamodule import SpeechFramesDataModule
from data_modules.speech.frames.memmap import ChunkedRandomSampler
from tests.helpers.wsj_corpus import naive_windows, save_split, write_corpus


def _norm_utt(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.float64)
    return ((u - u.mean(0)) / np.sqrt(u.var(0) + 1e-6)).astype(np.float32)


def ds_shape(ds) -> tuple[int, ...]:
    return tuple(ds.__getitems__(list(range(len(ds))))[0].shape)


def _all(ds) -> tuple[torch.Tensor, ...]:
    """Every sample of ``ds``, windows flattened to (N, (2k+1)*40) like ``naive_windows``."""
    x, *rest = ds.__getitems__(list(range(len(ds))))
    return (x.flatten(1), *rest)


@pytest.mark.parametrize("pad", ["zero", "edge"])
@pytest.mark.parametrize("k", [0, 1, 3, 12])
def test_windows_match_naive_reference(tmp_path, k, pad):
    corpus = write_corpus(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=k, pad=pad, normalize="none", num_workers=0)
    dm.setup("fit")
    for split, name in (("train", "train"), ("dev", "dev")):
        x, y = _all(dm.datasets[name])
        frames, labels = corpus[split]
        assert ds_shape(dm.datasets[name]) == (sum(map(len, frames)), *dm.input_shape)
        np.testing.assert_array_equal(x.numpy(), naive_windows(frames, k, pad))
        np.testing.assert_array_equal(y.numpy(), np.concatenate(labels))
    # random, unordered batches hit the same rows as the full gather
    ds = dm.datasets["train"]
    ids = np.random.default_rng(1).permutation(len(ds))[:17]
    np.testing.assert_array_equal(
        ds.__getitems__(ids.tolist())[0].flatten(1).numpy(),
        naive_windows(corpus["train"][0], k, pad)[ids],
    )


@pytest.mark.parametrize("pad", ["zero", "edge"])
def test_normalisation_applies_before_padding(tmp_path, pad):
    corpus = write_corpus(tmp_path)
    train = corpus["train"][0]
    dm = SpeechFramesDataModule(str(tmp_path), context=4, pad=pad, normalize="utterance")
    dm.setup("fit")
    ref = naive_windows([_norm_utt(u) for u in train], 4, pad)
    np.testing.assert_allclose(_all(dm.datasets["train"])[0].numpy(), ref, atol=1e-5)

    dm = SpeechFramesDataModule(str(tmp_path), context=4, pad=pad, normalize="global")
    dm.setup("fit")
    cat = np.concatenate(train).astype(np.float64)
    mean, std = cat.mean(0), np.sqrt(cat.var(0) + 1e-6)
    ref = naive_windows([((u - mean) / std).astype(np.float32) for u in corpus["dev"][0]], 4, pad)
    np.testing.assert_allclose(_all(dm.datasets["dev"])[0].numpy(), ref, atol=1e-5)


def test_global_stats_travel_in_state_dict(tmp_path):
    write_corpus(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=2, normalize="global")
    dm.setup("fit")
    state = dm.state_dict()
    assert len(state["global_mean"]) == 40
    # A predict-time module (train.npy gone) must use the stored statistics, not recompute them.
    (tmp_path / "train.npy").unlink()
    fresh = SpeechFramesDataModule(str(tmp_path), context=2, normalize="global")
    fresh.load_state_dict(state)
    fresh.setup("validate")
    np.testing.assert_array_equal(_all(fresh.datasets["dev"])[0], _all(dm.datasets["dev"])[0])


def test_float16_cache_is_close_and_separate(tmp_path):
    corpus = write_corpus(tmp_path)
    e32 = build_or_load(tmp_path, "train", dtype="float32")
    e16 = build_or_load(tmp_path, "train", dtype="float16")
    assert e32.path != e16.path
    assert e16.open_frames().dtype == np.float16
    np.testing.assert_allclose(
        e16.open_frames(), np.concatenate(corpus["train"][0]), rtol=1e-3, atol=1e-3
    )


def test_cache_reused_then_rebuilt_on_source_change(tmp_path):
    write_corpus(tmp_path)
    first = build_or_load(tmp_path, "train")
    stamp = (first.path / "frames.npy").stat().st_mtime_ns
    again = build_or_load(tmp_path, "train")
    assert again.path == first.path
    assert (again.path / "frames.npy").stat().st_mtime_ns == stamp  # not rewritten

    rng = np.random.default_rng(5)
    new_frames = [rng.normal(size=(6, 40)).astype(np.float32) for _ in range(3)]
    save_split(tmp_path, "train", new_frames, [np.zeros(6, np.int64)] * 3)
    rebuilt = build_or_load(tmp_path, "train")
    assert rebuilt.path != first.path and not first.path.exists()  # stale entry removed
    np.testing.assert_array_equal(rebuilt.open_frames(), np.concatenate(new_frames))
    assert rebuilt.meta["n_utterances"] == 3
    assert not list(tmp_path.glob(".wsj_cache/.tmp-*"))  # no temporary leftovers


def test_shared_cache_dir_keeps_each_data_dirs_entry(tmp_path):
    write_corpus(tmp_path / "a", seed=1)
    write_corpus(tmp_path / "b", seed=2)
    a = build_or_load(tmp_path / "a", "dev", cache_dir=tmp_path / "cache")
    b = build_or_load(tmp_path / "b", "dev", cache_dir=tmp_path / "cache")
    assert a.path.parent == b.path.parent == tmp_path / "cache"
    assert a.path.exists() and b.path.exists()  # b's build did not take a for a stale entry
    assert not (tmp_path / "a" / ".wsj_cache").exists()
    assert build_or_load(tmp_path / "a", "dev", cache_dir=tmp_path / "cache").path == a.path


def test_failed_build_leaves_no_cache(tmp_path):
    corpus = write_corpus(tmp_path)
    frames, labels = corpus["dev"]
    frames[1] = frames[1].copy()
    frames[1][0, 0] = np.nan
    save_split(tmp_path, "dev", frames, labels)
    with pytest.raises(ValueError, match="utterance 1"):
        build_or_load(tmp_path, "dev")
    assert not (tmp_path / ".wsj_cache").exists()  # not even an empty folder


@pytest.mark.parametrize(("workers", "resident"), [(0, False), (2, False), (2, True)])
def test_dataloaders_cover_every_frame(tmp_path, workers, resident):
    corpus = write_corpus(tmp_path, test_labels=False)
    dm = SpeechFramesDataModule(
        str(tmp_path), context=3, batch_size=8, num_workers=workers, resident=resident
    )
    dm.prepare_data()
    dm.setup("fit")
    ds = dm.datasets["train"]
    assert dm.resident == resident
    if not resident:
        ds.__getitems__([0])  # opens the map in this process ...
        assert pickle.loads(pickle.dumps(ds))._frames is None  # ... workers never get a copy
    else:  # gathered in this process: num_workers does not apply
        assert dm.train_dataloader().num_workers == 0
    dm.hparams.batch_size = 100  # > 45 train frames: one batch holding every frame
    ys = torch.cat([y for _, y in dm.train_dataloader()])
    assert sorted(ys.tolist()) == sorted(np.concatenate(corpus["train"][1]).tolist())
    dm.hparams.batch_size = 8  # 45 frames: 5 full batches, the ragged one dropped
    assert [len(y) for _, y in dm.train_dataloader()] == [8] * 5
    val = torch.cat([x.flatten(1) for x, _ in dm.val_dataloader()])
    ref = [((u - u.mean(0)) / np.sqrt(u.var(0) + 1e-6)) for u in corpus["dev"][0]]
    np.testing.assert_allclose(val.numpy(), naive_windows(ref, 3, "zero"), atol=1e-5)

    dm.setup("test")  # no test labels: trainer.test evaluates on dev
    assert torch.equal(
        torch.cat([y for _, y in dm.test_dataloader()]),
        torch.from_numpy(np.concatenate(corpus["dev"][1])),
    )
    dm.setup("predict")  # predict: (x,) over test.npy in file order
    batches = list(dm.predict_dataloader())
    assert all(len(b) == 1 for b in batches)
    ref = [((u - u.mean(0)) / np.sqrt(u.var(0) + 1e-6)) for u in corpus["test"][0]]
    np.testing.assert_allclose(
        torch.cat([b[0].flatten(1) for b in batches]).numpy(),
        naive_windows(ref, 3, "zero"),
        atol=1e-5,
    )


def test_test_split_used_when_it_has_labels(tmp_path):
    corpus = write_corpus(tmp_path, test_labels=True)
    dm = SpeechFramesDataModule(str(tmp_path), context=1, num_workers=0)
    dm.setup("test")
    assert torch.equal(
        torch.cat([y for _, y in dm.test_dataloader()]),
        torch.from_numpy(np.concatenate(corpus["test"][1])),
    )


def test_shapes_come_from_the_data(tmp_path):
    demo = SpeechFramesDataModule(str(tmp_path / "not_built_yet"), context=12, source="demo")
    assert demo.num_classes == 138 and demo.input_shape == (25, 40)  # the corpus it will build
    missing = SpeechFramesDataModule(str(tmp_path / "nowhere"), context=12)
    with pytest.raises(FileNotFoundError, match="no frame-classification data found"):
        missing.num_classes  # noqa: B018
    with pytest.raises(FileNotFoundError, match="train.npy"):
        SpeechFramesDataModule(str(tmp_path / "nowhere"), source="kaggle").setup("fit")
    with pytest.raises(ValueError, match="pad"):
        SpeechFramesDataModule(str(tmp_path), pad="reflect")
    corpus = write_corpus(tmp_path / "wide", test_labels=True)
    for split in ("train", "dev", "test"):  # 39 features and 12 classes this time
        frames, labels = corpus[split]
        save_split(tmp_path / "wide", split, [f[:, :39] for f in frames], [y % 12 for y in labels])
    wide = SpeechFramesDataModule(str(tmp_path / "wide"), context=2)
    assert wide.num_classes == 12 and wide.input_shape == (5, 39)
    wide.setup("fit")
    assert wide.datasets["train"].__getitems__([0])[0].shape == (1, 5, 39)
    assert wide.state_dict()["inventory"] == {
        "format": "kaggle", "feature_dim": 39, "num_classes": 12
    }  # fmt: skip


def test_chunked_sampler_is_a_seeded_permutation_lightning_sees_as_shuffling(tmp_path):
    torch.manual_seed(3)
    first = list(ChunkedRandomSampler(range(1000), chunk=64))
    assert sorted(first) == list(range(1000)) and first != list(range(1000))
    torch.manual_seed(3)
    assert list(ChunkedRandomSampler(range(1000), chunk=7)) == first

    write_corpus(tmp_path)
    dm = SpeechFramesDataModule(str(tmp_path), context=1, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert _is_dataloader_shuffled(dm.train_dataloader())  # DDP keeps shuffling
    assert not _is_dataloader_shuffled(dm.val_dataloader())
