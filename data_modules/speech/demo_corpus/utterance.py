"""One utterance: its recipe (`UtteranceSpec`) and how it becomes (features, labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import espeak, features, phonemes

MAX_CLOSURE_S = 0.06  # longest stop closure to move back (eSpeak's are 30-45 ms)


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything that decides an utterance; rendering it twice gives identical arrays."""

    index: int
    split: str
    text: str
    voice: str  # eSpeak voice name with variant, e.g. "en-gb-scotland+m3"
    rate: int  # words per minute
    pitch: int  # 0..100
    pitch_range: int  # 0..100
    snr_db: float  # white noise relative to the speech power
    gain_db: float
    lead_s: float  # silence added before and after the speech
    tail_s: float
    seed: int  # eSpeak's and the noise's random generators


def render(spec: UtteranceSpec, synth: espeak.Synthesizer) -> tuple[np.ndarray, np.ndarray]:
    """(T, 40) float32 log-mel frames and (T,) int64 classes in 0..137 for one utterance."""
    out = synth.synthesize(
        spec.text, spec.voice, spec.rate, spec.pitch, spec.pitch_range, seed=spec.seed
    )
    where = f"utterance {spec.index} ({spec.voice}): {spec.text!r}"
    if len(out.audio) == 0 or len(out.phonemes) == 0:
        raise RuntimeError(f"eSpeak produced no audio or phonemes for {where}")
    if np.any(np.diff(out.onsets) < 0):
        raise RuntimeError(f"eSpeak phoneme events out of order for {where}")
    ids = phonemes.to_phoneme_ids(out.phonemes, context=where)
    onsets = phonemes.move_closures_back(
        out.audio, ids, out.onsets, int(MAX_CLOSURE_S * espeak.SAMPLE_RATE)
    )

    speech = features.resample(out.audio, espeak.SAMPLE_RATE) * 10 ** (spec.gain_db / 20)
    lead = int(round(spec.lead_s * features.SAMPLE_RATE))
    tail = int(round(spec.tail_s * features.SAMPLE_RATE))
    signal = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    # eSpeak's silence is exact zeros, whose log is -inf-like; real recordings always have noise.
    rng = np.random.default_rng([spec.seed, 7])
    noise_power = np.mean(speech**2) / 10 ** (spec.snr_db / 10)
    signal += rng.standard_normal(len(signal)) * np.sqrt(noise_power)

    frames = features.log_mel(signal)
    offset = lead / features.SAMPLE_RATE
    labels = phonemes.frame_labels(
        ids,
        starts=onsets / espeak.SAMPLE_RATE + offset,
        speech_end=len(out.audio) / espeak.SAMPLE_RATE + offset,
        total=len(signal) / features.SAMPLE_RATE,
        centres=features.frame_centres(len(frames)),
    )
    return frames, labels
