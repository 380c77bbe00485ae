"""What the emulator hears: the words a test scripted, or real offline recognition.

* **A script** (``Emulator.script_transcripts(["book a table for two", ...])``): each
  utterance the emulator detects in the audio takes the next scripted text, its words
  timed across the speech it detected.  Deterministic, so a test of an agent can say what
  the user said.
* **PocketSphinx** (the ``stt`` extra: its wheel ships an English model; loaded on first
  use): real recognition of the audio.  On espeak-ng speech it is rough (our measurements
  are in docs/RELIABILITY.md): good enough to show that audio was heard and roughly what
  it said, not to assert exact words on.

Both give words with times relative to the start of the segment.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Heard", "NoRecognizer", "Script", "ScriptEntry", "SphinxRecognizer", "spread_words"]

Int16Array = npt.NDArray[np.int16]

#: PocketSphinx wants 16 kHz
SPHINX_RATE = 16000


@dataclass(frozen=True)
class ScriptEntry:
    text: str
    speaker: int | None = None
    channel: int | None = None


@dataclass(frozen=True)
class Heard:
    """Words heard in one segment: (word, start, end) seconds from the segment's start."""

    words: tuple[tuple[str, float, float], ...]
    speaker: int | None = None

    @property
    def text(self) -> str:
        return " ".join(w for w, _, _ in self.words)


class NoRecognizer(Exception):
    """Nothing to recognise with: no script left, and PocketSphinx is not installed."""


class Script:
    """Scripted transcripts, taken in order (per channel when an entry names one).
    Thread-safe: a test may add entries from its own thread while the emulator runs."""

    def __init__(self) -> None:
        self._entries: deque[ScriptEntry] = deque()
        self._lock = threading.Lock()

    def add(self, entries: list[ScriptEntry]) -> None:
        with self._lock:
            self._entries.extend(entries)

    def take(self, channel: int) -> ScriptEntry | None:
        with self._lock:
            for i, entry in enumerate(self._entries):
                if entry.channel is None or entry.channel == channel:
                    del self._entries[i]
                    return entry
        return None

    def __len__(self) -> int:
        return len(self._entries)


def spread_words(text: str, seconds: float) -> tuple[tuple[str, float, float], ...]:
    """The words of ``text`` across ``seconds`` of speech, each in proportion to its
    length (plus a little for the gap after it)."""
    words = text.split()
    if not words:
        return ()
    weights = [len(w) + 1 for w in words]
    total = sum(weights)
    out = []
    t = 0.0
    for w, weight in zip(words, weights, strict=True):
        span = seconds * weight / total
        out.append((w, round(t, 3), round(t + span * len(w) / weight, 3)))
        t += span
    return tuple(out)


def _featparams_without(model_dir: str, *keys: str) -> str:
    """The acoustic model's feat.params overrides settings given to the decoder; a copy
    without those keys lets ours apply."""
    with open(os.path.join(model_dir, "feat.params")) as f:
        lines = [ln for ln in f if not (ln.split() and ln.split()[0].lstrip("-") in keys)]
    fd, path = tempfile.mkstemp(prefix="xai-voice-feat-", suffix=".params")
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
    return path


class SphinxRecognizer:
    """Offline English recognition with PocketSphinx, one decoder per thread that uses it
    (a decoder is not thread-safe; each holds about 90 MB, so the pool stays small).

    Tuned for espeak-ng speech: espeak writes exact digital zeros between words, which
    PocketSphinx's front end handles badly, so faint noise and a little padding are added;
    the model's noise removal is off; the language weight is lowered a little.
    """

    _instance: SphinxRecognizer | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> SphinxRecognizer:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        try:
            import pocketsphinx
        except ImportError:
            raise NoRecognizer(
                "this emulator has no recognizer: install the 'stt' extra (pip install "
                "'xai-voice[stt]') for offline recognition, or script what the speaker says "
                "(Emulator.script_transcripts)"
            ) from None
        self._ps = pocketsphinx
        self._free: list[object] = []
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(0)

    def _decoder(self) -> object:
        with self._lock:
            if self._free:
                return self._free.pop()
        ps = self._ps
        model = ps.get_model_path("en-us/en-us")
        params = _featparams_without(model, "remove_noise", "cmn")
        try:
            return ps.Decoder(loglevel="FATAL", featparams=params, remove_noise=False, cmn="batch", lw=5.5)
        finally:
            os.unlink(params)

    def _release(self, decoder: object) -> None:
        with self._lock:
            if len(self._free) < 2:
                self._free.append(decoder)

    def recognize(self, pcm16k: Int16Array, pad: float = 0.3) -> Heard:
        """Blocking (run it in a worker thread): the words in 16 kHz mono audio."""
        x = pcm16k.astype(np.float64)
        z = np.zeros(int(pad * SPHINX_RATE))
        x = np.concatenate([z, x, z]) + self._rng.normal(0.0, 30.0, len(x) + 2 * len(z))
        data = np.clip(np.round(x), -32768, 32767).astype(np.int16).tobytes()
        d = self._decoder()
        try:
            d.start_utt()  # type: ignore[attr-defined]
            d.process_raw(data, False, True)  # type: ignore[attr-defined]
            d.end_utt()  # type: ignore[attr-defined]
            segs = d.seg() or []  # type: ignore[attr-defined]
            words = tuple(
                (
                    s.word.split("(", 1)[0],
                    round(max(0.0, s.start_frame / 100 - pad), 3),
                    round(max(0.0, (s.end_frame + 1) / 100 - pad), 3),
                )
                for s in segs
                if s.word not in ("<s>", "</s>", "<sil>") and not s.word.startswith("[")
            )
        finally:
            self._release(d)
        return Heard(words)
