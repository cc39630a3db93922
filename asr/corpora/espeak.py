"""Offline speech synthesis through a small ctypes binding to eSpeak NG.

eSpeak NG is a formant synthesiser: robotic, but hundreds of times faster than
real time, and the `espeakng-loader` wheel bundles the library and its data,
with a dozen English accents and about a hundred voice variants (`variants()`).
That makes it a source of multi-speaker training audio that needs no download.

eSpeak keeps process-wide state, so every call into it is serialised by one
lock. Some of that state survives between utterances (the phase of its pitch
flutter, its echo buffer and gain control), so the same text and voice can
come out a few samples different depending on what was spoken before; a fixed
sequence of calls in a fresh process is reproducible sample for sample.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, resample
from asr.errors import JobFailed

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report missing data as an error instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()


class EspeakError(JobFailed):
    """eSpeak NG could not synthesise a request."""


class EspeakUnavailable(EspeakError):
    """The eSpeak NG library or its data cannot be loaded."""


@dataclass(frozen=True)
class Voice:
    """An eSpeak voice and its prosody.

    name: a language voice ("en", "en-us", "en-gb-scotland", ...), optionally
        followed by "+variant" with a variant from `variants()` ("en-us+f3").
    rate: speaking rate in words per minute (eSpeak accepts 80-450; default 175).
    pitch: base pitch 0-99 relative to the variant's own (50 leaves it unchanged).
    range: pitch range 0-99 (0 is monotone, 50 the variant's own).
    """

    name: str
    rate: int = 175
    pitch: int = 50
    range: int = 50

    def __post_init__(self):
        if not self.name or self.name.count("+") > 1:
            raise ValueError(f"bad eSpeak voice name {self.name!r} "
                             "(expected 'language' or 'language+variant')")
        if not 80 <= self.rate <= 450:
            raise ValueError(f"voice {self.name}: rate {self.rate} is outside "
                             "80-450 words per minute")
        for field, value in (("pitch", self.pitch), ("range", self.range)):
            if not 0 <= value <= 99:
                raise ValueError(f"voice {self.name}: {field} {value} is outside 0-99")

    @property
    def variant(self) -> str | None:
        return self.name.partition("+")[2] or None


def synthesize(text: str, voice: Voice, sample_rate: int = SAMPLE_RATE,
               seed: int = 0) -> np.ndarray:
    """Speak `text` with `voice`; float32 of shape (samples,) in [-1, 1] at `sample_rate`.

    `seed` drives the breath noise of the variants that have it (e.g. "f1"-"f5");
    eSpeak would otherwise seed it from the clock.
    """
    if not text.strip():
        raise ValueError("nothing to synthesise: the text is empty")
    with _LOCK:
        engine = _engine()
        samples = engine.speak(text, voice, seed)
    return resample(samples.astype(np.float32) / 32768.0, engine.sample_rate, sample_rate)


def variants() -> list[str]:
    """Names of the voice variants in the bundled data ("f1".."f5", "m1".."m8", "klatt", ...)."""
    with _LOCK:
        return sorted(_engine().variants)


def version() -> str:
    """The eSpeak NG library's version, e.g. "1.52.0"."""
    with _LOCK:
        return _engine().version


class _Engine:
    """The process's one eSpeak instance, initialised for synchronous synthesis."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise EspeakUnavailable("eSpeak NG is unavailable: the espeakng-loader package "
                                    "is not installed (pip install espeakng-loader)") from None
        library_path = espeakng_loader.get_library_path()
        try:
            data_path = espeakng_loader.get_data_path()
            library = ctypes.CDLL(library_path)
        except (OSError, RuntimeError) as error:
            raise EspeakUnavailable(f"{library_path}: cannot load eSpeak NG ({error})") from None
        _declare(library)
        self.sample_rate = library.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_path), _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakUnavailable(f"{data_path}: eSpeak NG cannot initialise from this folder")
        # eSpeak keeps only the raw function pointer, so the ctypes wrapper must stay alive here.
        self._callback = _SYNTH_CALLBACK(self._collect)
        library.espeak_SetSynthCallback(self._callback)
        self._library = library
        self._chunks: list[bytes] = []
        self.variants = frozenset(os.listdir(Path(data_path) / "voices" / "!v"))
        self.version = library.espeak_Info(None).decode()

    def speak(self, text: str, voice: Voice, seed: int) -> np.ndarray:
        """int16 samples of shape (samples,) at `self.sample_rate`. Call with `_LOCK` held."""
        if voice.variant is not None and voice.variant not in self.variants:
            raise EspeakError(f"voice {voice.name}: eSpeak has no variant {voice.variant!r}")
        library = self._library
        # eSpeak silently ignores an unknown variant but rejects an unknown language.
        if library.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
            raise EspeakError(f"voice {voice.name}: eSpeak has no language voice "
                              f"{voice.name.partition('+')[0]!r}")
        for parameter, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.range)):
            library.espeak_SetParameter(parameter, value, 0)
        library.espeak_ng_SetRandSeed(seed)
        encoded = text.encode("utf-8")
        self._chunks = []
        status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                      _CHARS_UTF8, None, None)
        if status == _EE_OK:
            status = library.espeak_Synchronize()
        if status != _EE_OK:
            raise EspeakError(f"voice {voice.name}: eSpeak failed on {text!r} (error {status})")
        audio = np.frombuffer(b"".join(self._chunks), dtype=np.int16)
        if audio.size == 0:
            raise EspeakError(f"voice {voice.name}: eSpeak produced no audio for {text!r}")
        return audio

    def _collect(self, samples, count, events) -> int:
        # A null buffer marks the end of synthesis; zero-length buffers also occur mid-way.
        if samples and count > 0:
            self._chunks.append(ctypes.string_at(samples, 2 * count))
        return 0  # 0 = continue


@functools.cache
def _engine() -> _Engine:
    """The engine, loaded on first use; call with `_LOCK` held."""
    return _Engine()


def _declare(library: ctypes.CDLL) -> None:
    """Give ctypes the C signatures, so arguments are converted and checked."""
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_Initialize.restype = ctypes.c_int
    library.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    library.espeak_SetSynthCallback.restype = None
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetVoiceByName.restype = ctypes.c_int
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_SetParameter.restype = ctypes.c_int
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    library.espeak_Synth.restype = ctypes.c_int
    library.espeak_Synchronize.argtypes = []
    library.espeak_Synchronize.restype = ctypes.c_int
    library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    library.espeak_ng_SetRandSeed.restype = None
    library.espeak_Info.argtypes = [ctypes.c_void_p]
    library.espeak_Info.restype = ctypes.c_char_p
