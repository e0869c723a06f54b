"""ctypes binding to libespeak-ng (the optional ``espeakng-loader`` package, GPL-3): the only
free English synthesizer with sample-exact phoneme events, which frame labels need."""

from __future__ import annotations

import _ctypes
import ctypes
import os
import platform
from dataclasses import dataclass

import numpy as np

from data_modules.errors import UserInputError

SAMPLE_RATE = 22050  # eSpeak NG's native output rate

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """`espeak_EVENT` from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


if platform.machine() in ("x86_64", "AMD64"):
    # A wrong layout would silently yield garbage phoneme names and positions.
    assert ctypes.sizeof(_Event) == 40, ctypes.sizeof(_Event)
    assert _Event.user_data.offset == 24 and _Event.id.offset == 32

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class MissingExtraError(UserInputError, ImportError):
    """An optional extra this command needs is not installed (one line, exit status 2)."""


def _load_espeakng_loader():
    try:
        import espeakng_loader
    except ImportError as err:
        raise MissingExtraError(
            "The demo corpus needs eSpeak NG (GPL-3, optional). Install it with "
            '`pip install -e ".[demo]"` (package espeakng-loader==0.2.4).'
        ) from err
    return espeakng_loader


def _is_loaded(path: str) -> bool:
    try:
        probe = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)  # a handle only if already mapped
    except OSError:
        return False
    _ctypes.dlclose(probe._handle)
    return True


_engine: Synthesizer | None = None


def synthesizer() -> Synthesizer:
    """This process's eSpeak NG engine: one per process, as a second handle would keep the
    library mapped through the engine's reloads and utterances would stop being reproducible."""
    global _engine
    if _engine is None:
        _engine = Synthesizer()
    return _engine


@dataclass
class Synthesis:
    """One synthesized utterance: int16 audio at 22,050 Hz and the phoneme onsets in samples."""

    audio: np.ndarray  # int16 (n,)
    phonemes: list[str]  # eSpeak mnemonics, in order
    onsets: np.ndarray  # int64 (len(phonemes),), sample index where each phoneme starts


class Synthesizer:
    """An eSpeak NG engine (get it with ``synthesizer()``). eSpeak keeps state in C statics no API
    resets, so ``synthesize`` reloads the library (~0.5 ms) and seeds both its random generators:
    an utterance depends only on its own arguments."""

    def __init__(self) -> None:
        self._loader = _load_espeakng_loader()
        self._libc = ctypes.CDLL(None)
        self._lib = None
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        # Keep a reference: were the CFUNCTYPE object collected, the library would call freed memory
        self._callback = _CALLBACK(self._collect)
        self._open()
        self.version = self._lib.espeak_Info(None).decode()

    def _open(self) -> None:
        lib = ctypes.CDLL(self._loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            200,
            self._loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected {SAMPLE_RATE} Hz")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _reload(self) -> None:
        self._lib.espeak_Terminate()
        handle = self._lib._handle
        self._lib = None
        _ctypes.dlclose(handle)
        still_loaded = _is_loaded(self._loader.get_library_path())
        self._open()
        if still_loaded:
            raise RuntimeError(
                "libespeak-ng stayed loaded after this engine closed it: something else in this "
                "process holds it open (a second Synthesizer?), so its state cannot be reset "
                "and utterances would not be reproducible; use espeak.synthesizer()"
            )

    def _collect(self, wav, n_samples, events) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = events[i].id.string.decode("utf-8", errors="replace")
                self._events.append((name, events[i].sample))
            i += 1
        return 0  # 0 = go on synthesizing

    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int = 0
    ) -> Synthesis:
        """Speak `text` with `voice` (e.g. "en-us+f3"); rate in words/min, pitch/range in 0..100."""
        self._reload()
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG rejected voice {voice!r}")
        # SetVoiceByName resets these, so they must come after it.
        params = ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range))
        for param, value in params:
            self._lib.espeak_SetParameter(param, int(value), 0)
        # Klatt voices draw noise from libc rand(), the others from eSpeak's own generator.
        self._lib.espeak_ng_SetRandSeed(seed)
        self._libc.srand(ctypes.c_uint(seed % 2**32))
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} on {text!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        names = [name for name, _ in self._events]
        onsets = np.array([sample for _, sample in self._events], dtype=np.int64)
        return Synthesis(audio=audio, phonemes=names, onsets=onsets)
