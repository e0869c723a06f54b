"""The eSpeak NG demo corpus generator: valid Kaggle-format arrays, labels, determinism, safety.

Tests that synthesize speech are skipped when the optional `espeakng-loader` is not installed;
the numpy parts (features, labelling, closure fix) always run.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from data_modules.speech.demo_corpus import corpus, features, phonemes
from data_modules.speech.demo_corpus.generate import FILES, build_demo_corpus, read_manifest
from data_modules.speech.demo_corpus.phonemes import NUM_CLASSES, PHONEMES, SIL

N_TINY = 12  # 10 train, 1 dev, 1 test


@pytest.fixture(scope="module")
def espeak():
    pytest.importorskip("espeakng_loader")
    from data_modules.speech.demo_corpus import espeak

    return espeak


@pytest.fixture(scope="module")
def synth(espeak):
    return espeak.synthesizer()


@pytest.fixture(scope="module")
def tiny(espeak, tmp_path_factory):
    return build_demo_corpus(tmp_path_factory.mktemp("demo") / "corpus", N_TINY, seed=0)


def _load(directory, name):
    return np.load(directory / name, allow_pickle=True)  # our own freshly written files


def test_files_are_valid_kaggle_arrays(tiny):
    manifest = read_manifest(tiny)
    assert sorted(p.name for p in tiny.iterdir()) == sorted([*FILES, "manifest.json"])
    for split, expected in corpus.split_sizes(N_TINY).items():
        frames, labels = _load(tiny, f"{split}.npy"), _load(tiny, f"{split}_labels.npy")
        assert frames.dtype == object and labels.dtype == object
        assert len(frames) == len(labels) == expected == manifest["splits"][split]["utterances"]
        for x, y in zip(frames, labels, strict=True):
            assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 40 and len(x) > 50
            assert np.isfinite(x).all()
            assert np.issubdtype(y.dtype, np.integer) and y.shape == (len(x),)
            assert y.min() >= 0 and y.max() < NUM_CLASSES
            assert y[0] // 3 == SIL and y[-1] // 3 == SIL  # added leading/trailing silence
        assert sum(map(len, labels)) == manifest["splits"][split]["frames"]
    train_labels = np.concatenate(list(_load(tiny, "train_labels.npy")))
    assert len(np.unique(train_labels // 3)) > 25  # real speech covers many phonemes


def test_dev_and_test_voices_are_held_out():
    specs = corpus.make_specs(300, seed=0)
    variants = {
        s: {sp.voice.partition("+")[2] for sp in specs if sp.split == s} for s in corpus.SPLITS
    }
    assert variants["train"].isdisjoint(variants["dev"] | variants["test"])
    assert variants["dev"].isdisjoint(variants["test"])
    assert len({sp.voice.partition("+")[0] for sp in specs if sp.split == "dev"}) > 4


def test_manifest_voices_disjoint(tiny):
    splits = read_manifest(tiny)["splits"]
    assert set(splits["train"]["voices"]).isdisjoint(splits["dev"]["voices"])
    assert set(splits["train"]["voices"]).isdisjoint(splits["test"]["voices"])


def test_same_seed_same_arrays_whatever_the_workers(tiny, tmp_path):
    again = build_demo_corpus(tmp_path / "again", N_TINY, seed=0, workers=2)
    for name in FILES:
        a, b = _load(tiny, name), _load(again, name)
        assert len(a) == len(b), name
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), name
    in_process = build_demo_corpus(tmp_path / "in_process", 3, seed=0)  # after earlier builds
    first = corpus.make_specs(3, seed=0)[0]
    assert first == corpus.make_specs(N_TINY, seed=0)[0]
    assert np.array_equal(_load(in_process, "train.npy")[0], _load(tiny, "train.npy")[0])
    other = build_demo_corpus(tmp_path / "other", 3, seed=1)
    assert not np.array_equal(_load(other, "train.npy")[0], _load(tiny, "train.npy")[0])


def test_a_second_open_handle_is_refused_not_silently_irreproducible(synth, espeak):
    import ctypes

    extra = ctypes.CDLL(espeak._load_espeakng_loader().get_library_path())
    try:
        with pytest.raises(RuntimeError, match="stayed loaded"):
            synth.synthesize("Hello.", "en-us", 175, 50, 50)
    finally:
        import _ctypes

        _ctypes.dlclose(extra._handle)
    assert len(synth.synthesize("Hello.", "en-us", 175, 50, 50).audio) > 0


def test_reuses_matching_corpus_and_refuses_to_overwrite(tiny, tmp_path):
    stamp = (tiny / "train.npy").stat().st_mtime_ns
    assert build_demo_corpus(tiny, N_TINY, seed=0) == tiny
    assert (tiny / "train.npy").stat().st_mtime_ns == stamp  # reused, not rebuilt
    target = tmp_path / "c"
    build_demo_corpus(target, 3, seed=0)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_demo_corpus(target, 3, seed=5)
    build_demo_corpus(target, 3, seed=5, overwrite=True)
    assert read_manifest(target)["request"] == {"n_utterances": 3, "seed": 5}
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo corpus"):
        build_demo_corpus(user_dir, 3, seed=0, overwrite=True)
    assert (user_dir / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_mapping_covers_every_phoneme_emitted_for_the_corpus_sentences(synth):
    # Every accent speaks a spread of the grammar's sentences; all mnemonics must map.
    specs = corpus.make_specs(48, seed=0)
    seen = set()
    for i, spec in enumerate(specs):
        accent = corpus.ACCENTS[i % len(corpus.ACCENTS)]
        out = synth.synthesize(spec.text, accent, 175, 50, 50)
        phonemes.to_phoneme_ids(out.phonemes, context=spec.text)  # raises on an unknown one
        seen.update(out.phonemes)
    assert len(seen) > 40
    with pytest.raises(phonemes.UnknownPhonemeError, match="'Xq'"):
        phonemes.to_phoneme_ids(["'a", "Xq"])


def test_unknown_voice_variant_is_refused(espeak):
    from data_modules.speech.demo_corpus.generate import check_voices

    spec = corpus.make_specs(3, seed=0)[0]
    check_voices([spec])
    with pytest.raises(ValueError, match="nobody"):
        check_voices([type(spec)(**{**spec.__dict__, "voice": "en+nobody"})])


def test_closures_of_real_stops_are_silent_and_moved_back(synth):
    out = synth.synthesize("The company kept a tight budget.", "en-us", 175, 50, 50)
    ids = phonemes.to_phoneme_ids(out.phonemes)
    fixed = phonemes.move_closures_back(out.audio, ids, out.onsets, max_samples=1323)
    voiceless = np.isin(ids, [PHONEMES.index(p) for p in ("P", "T", "K")])
    moved = (out.onsets - fixed)[voiceless]
    assert (moved > 0.02 * 22050).mean() > 0.5  # most closures are 30-45 ms
    for new, old in zip(fixed[voiceless], out.onsets[voiceless], strict=True):
        assert not out.audio[new:old].any() and out.audio[new - 1] != 0
    others = ~np.isin(ids, list(phonemes.CLOSURE_PHONEMES))
    assert np.array_equal(fixed[others], out.onsets[others])


def test_move_closures_back_stops_at_previous_onset_and_cap():
    audio = np.array([5] * 10 + [0] * 20 + [7] * 10, dtype=np.int16)
    t, aa = PHONEMES.index("T"), PHONEMES.index("AA")
    ids = np.array([aa, t, aa, t])
    onsets = np.array([0, 30, 32, 36])
    assert phonemes.move_closures_back(audio, ids, onsets, 100).tolist() == [0, 10, 32, 36]
    assert phonemes.move_closures_back(audio, ids, onsets, 5).tolist() == [0, 25, 32, 36]
    later = np.array([0, 15, 30, 36])  # previous onset inside the silence: stop just after it
    assert phonemes.move_closures_back(audio, np.array([aa, aa, t, t]), later, 100).tolist() == [
        0,
        15,
        16,
        36,
    ]


def test_frame_labels_states_are_thirds_and_pauses_merge():
    aa, b = PHONEMES.index("AA"), PHONEMES.index("B")
    ids = np.array([aa, SIL, SIL, b])
    starts = np.array([0.0, 0.3, 0.4, 0.6])
    centres = np.array([0.05, 0.15, 0.25, 0.31, 0.39, 0.45, 0.59, 0.61, 0.79, 0.95])
    got = phonemes.frame_labels(ids, starts, speech_end=0.9, total=1.0, centres=centres)
    # AA [0, .3); one pause [.3, .6) (two merged events); B [.6, .9); trailing pause [.9, 1)
    want = [
        aa * 3,
        aa * 3 + 1,
        aa * 3 + 2,
        SIL * 3,
        SIL * 3,
        SIL * 3 + 1,
        SIL * 3 + 2,
        b * 3,
        b * 3 + 1,
        SIL * 3 + 1,
    ]
    assert got.tolist() == want


def test_log_mel_shape_and_tone_band():
    t = np.arange(16000) / 16000
    tone = 1000 * np.sin(2 * np.pi * 1000 * t)
    mel = features.log_mel(tone)
    assert mel.shape == (1 + (16000 - 400) // 160, 40) and mel.dtype == np.float32
    centres = features.mel_filterbank().argmax(axis=0) * 16000 / 512
    assert abs(centres[mel.mean(axis=0).argmax()] - 1000) < 100


def test_resample_keeps_a_tone():
    t = np.arange(22050) / 22050
    out = features.resample(np.sin(2 * np.pi * 440 * t), 22050, 16000)
    assert len(out) == 16000
    assert np.allclose(
        out[500:-500], np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[500:-500], atol=1e-6
    )


def test_missing_espeak_gives_install_hint(monkeypatch):
    from data_modules.speech.demo_corpus import espeak

    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[demo\]"'):
        espeak._load_espeakng_loader()


def test_files_pass_the_wsj_reader(tiny):
    # The WSJ loader reads Kaggle files without trusting their pickles and validates every
    # utterance; the demo corpus must pass that gate unchanged.
    from data_modules.speech.layouts.wsj import read_split

    for split in corpus.SPLITS:
        data = read_split(tiny / f"{split}.npy", tiny / f"{split}_labels.npy")
        frames, labels = data.frames, data.labels
        reference = _load(tiny, f"{split}.npy")
        assert len(frames) == len(labels) == len(reference)
        assert all(np.array_equal(a, b) for a, b in zip(frames, reference, strict=True))


@pytest.mark.parametrize("layout", ["librispeech", "libriphone"])
def test_other_layouts_hold_the_same_speech_and_pass_their_readers(espeak, tiny, tmp_path, layout):
    from data_modules.speech.demo_corpus import layouts
    from data_modules.speech.frames.datamodule import SpeechFramesDataModule

    out = build_demo_corpus(tmp_path / layout, N_TINY, seed=0, layout=layout)
    manifest = read_manifest(out)
    assert manifest["layout"] == layout and manifest["request"]["layout"] == layout
    assert build_demo_corpus(out, N_TINY, seed=0, layout=layout) == out  # reused
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_demo_corpus(out, N_TINY, seed=0)  # another layout is another request
    dm = SpeechFramesDataModule(str(out), context=1, normalize="none")  # source: auto
    assert dm.format == layout
    assert dm.inventory.to_state() == layouts.inventory(layout)  # from the manifest
    dm.setup("fit")
    dm.setup("test")
    kaggle_frames = list(_load(tiny, "train.npy"))
    kaggle_labels = np.concatenate(list(_load(tiny, "train_labels.npy")))
    train = dm.datasets["train" if layout == "librispeech" else "test"]
    if layout == "librispeech":  # the same utterances, as cepstra; labels are phonemes
        x, y = train.__getitems__(list(range(len(train))))
        ceps = np.concatenate([features.mfcc(f, 28) for f in kaggle_frames])
        np.testing.assert_allclose(x[:, 1].numpy(), ceps, rtol=1e-5, atol=1e-4)
        assert y.tolist() == [
            dm.inventory.symbols.index("[SIL]" if PHONEMES[c // 3] == "SIL" else PHONEMES[c // 3])
            for c in kaggle_labels
        ]
        assert dm._test_split() == "test"
    else:  # 13 cepstra + deltas + delta-deltas; test in test_split.txt's shuffled order
        assert dm.input_shape == (3, 39) and dm.num_classes == len(PHONEMES)
        listed = (out / "test_split.txt").read_text().split()
        test_specs = [s for s in corpus.make_specs(N_TINY, 0) if s.split == "test"]
        order = layouts.test_order(len(test_specs), 0)
        assert listed == [layouts.utterance_id(test_specs[i].index) for i in order]
        assert not np.array_equal(layouts.test_order(10, 0), np.arange(10))  # not sorted
        assert len(dm.datasets["train"]) + len(dm.datasets["dev"]) == len(kaggle_labels)


def test_cepstra_are_an_orthonormal_dct_of_the_log_mels():
    basis = features.dct_matrix(40, 40)
    np.testing.assert_allclose(basis.T @ basis, np.eye(40), atol=1e-10)
    frames = np.random.default_rng(0).normal(size=(7, 40)).astype(np.float32)
    np.testing.assert_allclose(features.mfcc(frames, 40) @ basis.T, frames, atol=1e-4)
    ramp = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    np.testing.assert_allclose(features.deltas(ramp)[2:-2], 1.0, atol=1e-6)  # slope of a ramp
