"""The emulator's voice: real offline speech from libespeak-ng (the ``espeakng-loader``
wheel), or a cheap tone for load tests.

libespeak-ng is one bag of global state per process (one callback, one voice, one set of
parameters), so a single :class:`Espeak` guards every call with one lock; the emulator
runs it in a worker thread so the event loop keeps serving other sessions.

Each built-in xAI voice maps to a distinct espeak variant and pitch, so two voices are
told apart by ear and by a test.
"""

from __future__ import annotations

import ctypes
import re
import threading
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_short, c_size_t, c_uint, c_void_p
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ESPEAK_RATE",
    "Espeak",
    "Noise",
    "Speech",
    "Voiced",
    "WordTiming",
    "speak_tone",
    "split_tags",
    "voice_for",
]

Int16Array = npt.NDArray[np.int16]

#: espeak-ng always synthesises at 22,050 Hz
ESPEAK_RATE = 22050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it a bad data path calls exit(1)
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EV_LIST_TERMINATED, _EV_WORD = 0, 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _Event(Structure):
    # speak_lib.h espeak_EVENT, 64-bit layout (40 bytes); the trailing union is left
    # opaque because only word events and their positions are used
    _fields_ = [
        ("type", c_int),
        ("unique_identifier", c_uint),
        ("text_position", c_int),  # 1-based code-point index into the text
        ("length", c_int),
        ("audio_position", c_int),  # ms from the start of this synthesis
        ("sample", c_int),
        ("user_data", c_void_p),
        ("id", c_void_p),
    ]


_CALLBACK = CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_Event))

# (variant, pitch 0..100) per built-in voice: 13 female-sounding, 13 male-sounding
_VARIANTS: dict[str, tuple[str, int]] = {
    "eve": ("f3", 55), "ara": ("f2", 50), "leo": ("m3", 45), "rex": ("m1", 35),
    "sal": ("m2", 50), "carina": ("f1", 60), "zagan": ("m7", 30), "helix": ("m4", 55),
    "orion": ("m5", 40), "luna": ("f4", 65), "iris": ("f5", 55), "altair": ("m6", 45),
    "zenith": ("Andy", 50), "perseus": ("david", 40), "helios": ("john", 45),
    "lux": ("Annie", 60), "kepler": ("robert", 50), "rigel": ("max", 40),
    "cosmo": ("adam", 55), "celeste": ("belinda", 60), "ursa": ("linda", 45),
    "sirius": ("m8", 50), "lumen": ("steph", 55), "castor": ("paul", 45),
    "naksh": ("anika", 50), "atlas": ("ian", 35),
}  # fmt: skip

_LANGUAGE_VOICES = {
    "auto": "en-us", "en": "en-us", "ar-EG": "ar", "ar-SA": "ar", "ar-AE": "ar", "bn": "bn",
    "zh": "cmn", "fr": "fr", "de": "de", "hi": "hi", "id": "id", "it": "it", "ja": "ja",
    "ko": "ko", "pt-BR": "pt-br", "pt-PT": "pt", "ru": "ru", "es-MX": "es-419", "es-ES": "es",
    "tr": "tr", "vi": "vi",
}  # fmt: skip


def voice_for(voice: str, language: str) -> tuple[str, int]:
    """(espeak voice name, pitch) for an xAI voice and language.  Custom voice ids get a
    stable variant picked from their name."""
    base = (
        _LANGUAGE_VOICES.get(language)
        or _LANGUAGE_VOICES.get(language.split("-")[0].lower())
        or language.split("-")[0].lower()  # espeak knows many; an unknown one falls back to en-us
    )
    variant, pitch = (
        _VARIANTS.get(voice.lower()) or list(_VARIANTS.values())[sum(map(ord, voice)) % len(_VARIANTS)]
    )
    return f"{base}+{variant}", pitch


@dataclass(frozen=True)
class WordTiming:
    start: int  # 0-based index of the word's first character in the spoken text
    length: int
    seconds: float  # when the word starts


@dataclass(frozen=True)
class Speech:
    pcm: Int16Array  # mono, ESPEAK_RATE
    words: tuple[WordTiming, ...]


class Espeak:
    """The process's one libespeak-ng, guarded by one lock."""

    _instance: Espeak | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> Espeak:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [c_int, c_int, c_char_p, c_int]
        lib.espeak_Initialize.restype = c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [c_char_p]
        lib.espeak_SetVoiceByName.restype = c_int
        lib.espeak_SetParameter.argtypes = [c_int, c_int, c_int]
        lib.espeak_SetParameter.restype = c_int
        lib.espeak_Synth.argtypes = [
            c_void_p, c_size_t, c_uint, c_int, c_uint, c_uint, POINTER(c_uint), c_void_p
        ]  # fmt: skip
        lib.espeak_Synth.restype = c_int
        self._lib = lib
        self.lock = threading.Lock()
        self._pcm = bytearray()
        self._words: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # must outlive every synthesis
        with self.lock:
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                espeakng_loader.get_data_path().encode(),
                _INITIALIZE_DONT_EXIT,
            )
            if rate != ESPEAK_RATE:
                raise RuntimeError(f"libespeak-ng failed to initialise (returned {rate})")
            lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: ctypes._Pointer[c_short], n: int, events: ctypes._Pointer[_Event]) -> int:
        if wav and n > 0:
            self._pcm += ctypes.string_at(wav, n * 2)
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_WORD:
                self._words.append((ev.text_position - 1, ev.length, ev.audio_position))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, *, pitch: int = 50, speed: float = 1.0) -> Speech:
        """Blocking; call from a worker thread."""
        if not text.strip():
            return Speech(np.zeros(0, dtype=np.int16), ())
        buf = text.encode("utf-8") + b"\0"
        words_per_minute = int(min(450, max(80, 175 * speed)))
        with self.lock:
            lib = self._lib
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                lib.espeak_SetVoiceByName(b"en-us")
            # parameters outlive a voice change: set them all, every time
            for param, value in ((_RATE, words_per_minute), (_PITCH, pitch), (_RANGE, 50), (_VOLUME, 100)):
                lib.espeak_SetParameter(param, value, 0)
            self._pcm = bytearray()
            self._words = []
            rc = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
            pcm, words = bytes(self._pcm), self._words
            self._pcm, self._words = bytearray(), []
        if rc != 0:
            raise RuntimeError(f"espeak_Synth failed ({rc})")
        return Speech(
            np.frombuffer(pcm, dtype=np.int16).copy(),
            tuple(WordTiming(p, n, ms / 1000.0) for p, n, ms in words),
        )


def speak_tone(
    text: str, voice: str, sample_rate: int, *, speed: float = 1.0, char_seconds: float = 0.06
) -> Speech:
    """A tone whose length follows the text (``char_seconds`` a character at speed 1),
    with a pitch per voice: no speech, almost no CPU.  For load tests."""
    n_chars = len(text.strip())
    if n_chars == 0:
        return Speech(np.zeros(0, dtype=np.int16), ())
    seconds = max(0.02, char_seconds * n_chars / speed)
    n = int(seconds * sample_rate)
    freq = 180.0 + 10.0 * (sum(map(ord, voice)) % 30)
    t = np.arange(n, dtype=np.float64) / sample_rate
    pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    words = []
    for m in re.finditer(r"\S+", text):
        words.append(WordTiming(m.start(), m.end() - m.start(), seconds * m.start() / max(1, len(text))))
    return Speech(pcm, tuple(words))


# -- speech tags ------------------------------------------------------------------------

_PAUSES = {"pause": 0.35, "long-pause": 1.0}
#: inline tags voiced as words espeak can say
_VOCAL = {
    "laugh": "ha ha ha",
    "chuckle": "heh heh",
    "giggle": "hee hee hee",
    "cry": "boo hoo",
    "hum-tune": "hmm hmm hmmm",
}
#: inline tags voiced as a noise: (kind, seconds)
_NOISES = {
    "breath": ("breath", 0.35),
    "inhale": ("breath", 0.35),
    "exhale": ("breath", 0.4),
    "sigh": ("breath", 0.6),
    "tsk": ("click", 0.12),
    "tongue-click": ("click", 0.1),
    "lip-smack": ("click", 0.1),
}
_TAG = re.compile(r"\[([a-z-]+)\]|</?([a-z-]+)>")


@dataclass(frozen=True)
class Noise:
    """A non-speech sound for an inline tag: ``breath`` (shaped noise) or ``click``."""

    kind: str
    seconds: float

    def pcm(self, sample_rate: int) -> Int16Array:
        n = int(self.seconds * sample_rate)
        rng = np.random.default_rng(len(self.kind) * 7919 + n)  # the same sound every time
        if self.kind == "click":
            out = np.zeros(n, dtype=np.float64)
            k = max(1, sample_rate // 500)
            out[:k] = rng.uniform(-1, 1, k) * np.linspace(1, 0, k)
            click: Int16Array = (out * 12000).astype(np.int16)
            return click
        envelope = np.sin(np.linspace(0, np.pi, n)) ** 2
        breath: Int16Array = (rng.normal(0, 0.25, n) * envelope * 6000).astype(np.int16)
        return breath


@dataclass(frozen=True)
class Voiced:
    """An inline tag voiced as words (``[laugh]`` -> "ha ha ha"): heard, but not part of
    the text a caption shows, so not timed."""

    text: str


def split_tags(text: str) -> list[str | float | Noise | Voiced]:
    """Text pieces, pause lengths and noises.  ``[pause]`` and ``[long-pause]`` become
    silence; ``[laugh]`` and its kin are voiced as words (``ha ha ha``); breaths and clicks
    become noises; wrapping tags (``<whisper>``) are dropped, since espeak would read them
    aloud.  A reply made only of tags still makes a sound, as the service's would."""
    out: list[str | float | Noise | Voiced] = []
    pos = 0
    for m in _TAG.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        name = m.group(1) or ""
        if name in _PAUSES:
            out.append(_PAUSES[name])
        elif name in _VOCAL:
            out.append(Voiced(_VOCAL[name]))
        elif name in _NOISES:
            kind, seconds = _NOISES[name]
            out.append(Noise(kind, seconds))
        else:
            out.append(" ")
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out
