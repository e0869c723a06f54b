"""Audio -> 40 log-mel bands at 100 frames/s (16 kHz, 25 ms windows, 10 ms hop), numpy only.

Kaldi-style filterbanks, as the Kaggle WSJ data, so models for the real files work unchanged."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 40
PREEMPHASIS = 0.97


def _next_smooth(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: FFT sizes that pocketfft handles fast."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling in the frequency domain (float64, the input's scale); eSpeak's
    output starts and ends silent, so the circular FFT wraps nothing."""
    g = int(np.gcd(rate_in, rate_out))
    step_in, step_out = rate_in // g, rate_out // g
    blocks = _next_smooth(-(-len(audio) // step_in))
    n_in, n_out = blocks * step_in, blocks * step_out
    spectrum = np.fft.rfft(audio.astype(np.float64), n_in)
    out = np.fft.irfft(spectrum[: n_out // 2 + 1], n_out) * (n_out / n_in)
    return out[: int(round(len(audio) * rate_out / rate_in))]


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular HTK-mel filters from 20 Hz to 8 kHz."""

    def mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz) / 700.0)

    edges = np.linspace(mel(20.0), mel(SAMPLE_RATE / 2), N_MELS + 2)
    bins = mel(np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT)[:, None]
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


@lru_cache(maxsize=1)
def _sparse_filterbank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filterbank as (bins, weights, filter starts): a gather and segmented sum of the narrow
    filters avoid the BLAS start-up that made ``power @ fb`` 100x slower."""
    bank = mel_filterbank().T  # (N_MELS, bins)
    filt, bins = np.nonzero(bank)
    counts = np.bincount(filt, minlength=N_MELS)
    assert counts.min() > 0, "every mel filter must cover at least one FFT bin"
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return bins, bank[filt, bins], starts


def n_frames(n_samples: int) -> int:
    """Frames that fit entirely inside the signal (Kaldi's snip-edges convention)."""
    return max(0, 1 + (n_samples - WINDOW) // HOP)


def frame_centres(count: int) -> np.ndarray:
    """Centre time in seconds of each of `count` frames."""
    return (np.arange(count) * HOP + WINDOW / 2) / SAMPLE_RATE


def log_mel(signal: np.ndarray) -> np.ndarray:
    """(T, 40) float32 log-mel energies of a 16 kHz signal (int16 scale, like Kaldi's fbank)."""
    count = n_frames(len(signal))
    if count == 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(signal, WINDOW)[::HOP][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1], frames[:, 1:] - PREEMPHASIS * frames[:, :-1]], axis=1)
    power = np.abs(np.fft.rfft(frames * np.hamming(WINDOW), N_FFT)) ** 2
    bins, weights, starts = _sparse_filterbank()
    mel = np.add.reduceat(power[:, bins] * weights, starts, axis=1)
    return np.log(np.maximum(mel, 1e-10)).astype(np.float32)


@lru_cache(maxsize=4)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_in, n_out) orthonormal DCT-II: cepstra = log_mel @ dct_matrix (as Kaldi and librosa)."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def mfcc(log_mel_frames: np.ndarray, n_ceps: int) -> np.ndarray:
    """(T, n_ceps) float32 cepstra of (T, 40) log-mel frames."""
    basis = dct_matrix(log_mel_frames.shape[1], n_ceps)
    return (log_mel_frames.astype(np.float64) @ basis).astype(np.float32)


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-``width`` frames, edges repeated (Kaldi's add-deltas)."""
    padded = np.pad(x.astype(np.float64), ((width, width), (0, 0)), mode="edge")
    t = len(x)
    num = sum(n * (padded[width + n : width + n + t] - padded[width - n : width - n + t])
              for n in range(1, width + 1))  # fmt: skip
    return (num / (2 * sum(n * n for n in range(1, width + 1)))).astype(np.float32)
