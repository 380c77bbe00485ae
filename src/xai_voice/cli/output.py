"""Where ``xai-voice say`` writes its audio, and how it makes sure a file is whole.

A regular file is written beside itself under a hidden name and moved into place only when
the audio is complete (atomic: a reader never sees half a file), keeping the permissions
of the file it replaces, or the umask's for a new one; an existing read-only file is not
replaced.  A symlink is written through (to its target).  A FIFO, a device or standard
output (``-``) is written into directly, as it comes.  A WAV file gets one header, sized
to all the audio, however many utterances made it.  On failure nothing is left behind:
not the hidden file, not the directories made for it.  Errors name the user's path.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..audio import wav_header

__all__ = ["AudioOutput", "OutputError", "WavFormat"]


class OutputError(Exception):
    """The output cannot be written; the message names the user's path and why."""


class WavFormat:
    """What the WAV header says about the raw audio (PCM or G.711) under it."""

    def __init__(self, sample_rate: int, codec: str) -> None:
        self.sample_rate = sample_rate
        self.codec = codec

    def header(self, data_bytes: int) -> bytes:
        if self.codec == "pcm":
            return wav_header(self.sample_rate, data_bytes)
        tag = 7 if self.codec == "mulaw" else 6  # G.711 in WAV: 8 bits, format 7 or 6
        return wav_header(self.sample_rate, data_bytes, bits=8, format_tag=tag)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AudioOutput:
    """Audio to one destination.  Use ``open()``, then ``write()`` chunks, then ``finish()``
    (returns the bytes the destination holds) or ``abort()``."""

    def __init__(self, target: str, *, wav: WavFormat | None = None) -> None:
        self.target = target
        self.wav = wav
        self.audio_bytes = 0
        self._stream: BinaryIO | None = None
        self._temp: Path | None = None
        self._final: Path | None = None
        self._mode: int | None = None
        self._made_dirs: list[Path] = []
        self._buffer: io.BytesIO | None = None  # WAV to something we cannot seek back into
        self._direct_close = False

    # -- opening -----------------------------------------------------------------------

    def open(self) -> AudioOutput:
        if self.target == "-":
            self._stream = sys.stdout.buffer
            self._start_direct()
            return self
        path = Path(self.target)
        final = Path(os.path.realpath(path))  # through a symlink to what it points at
        try:
            st = os.stat(final)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise self._error(exc) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(
                f"{self.target} is a directory; give a file name (like {self.target}/speech.wav)"
            )
        if st is not None and not stat.S_ISREG(st.st_mode):
            # a FIFO, a device: written into, never replaced
            try:
                self._stream = open(final, "wb")  # noqa: SIM115 - closed by finish()/abort()
            except OSError as exc:
                raise self._error(exc) from None
            self._direct_close = True
            self._start_direct()
            return self
        if st is not None and not (st.st_mode & 0o222 and os.access(final, os.W_OK)):
            raise OutputError(f"{self.target} is read-only; make it writable, or choose another file")
        self._mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
        self._make_parents(final.parent)
        try:
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
        except OSError as exc:
            self.abort()
            raise self._error(exc) from None
        self._temp, self._final = Path(name), final
        self._stream = os.fdopen(fd, "wb")
        if self.wav is not None:
            self._stream.write(b"\0" * 44)  # the header, once the length is known
        return self

    def _start_direct(self) -> None:
        if self.wav is not None:
            self._buffer = io.BytesIO()  # the header needs the length: hold the audio

    def _make_parents(self, parent: Path) -> None:
        missing: list[Path] = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                self.abort()
                raise self._error(exc, d) from None
            self._made_dirs.append(d)

    # -- writing -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.audio_bytes += len(data)
        try:
            if self._buffer is not None:
                self._buffer.write(data)
            else:
                assert self._stream is not None
                self._stream.write(data)
        except OSError as exc:
            raise self._error(exc) from None

    def finish(self) -> int:
        """Complete the output; returns the size of what was written (header included)."""
        stream = self._stream
        assert stream is not None
        try:
            if self._buffer is not None:
                assert self.wav is not None
                stream.write(self.wav.header(self.audio_bytes))
                stream.write(self._buffer.getvalue())
                size = 44 + self.audio_bytes
            elif self.wav is not None and self._temp is not None:
                stream.seek(0)
                stream.write(self.wav.header(self.audio_bytes))
                size = 44 + self.audio_bytes
            else:
                size = self.audio_bytes
            stream.flush()
            if self._temp is not None:
                stream.close()
                assert self._final is not None and self._mode is not None
                os.chmod(self._temp, self._mode)
                os.replace(self._temp, self._final)
                self._temp = None
            elif self._direct_close:
                stream.close()
        except OSError as exc:
            self.abort()
            raise self._error(exc) from None
        return size

    def abort(self) -> None:
        """Undo what this output did: the hidden file, the directories made for it."""
        stream, self._stream = self._stream, None
        if stream is not None and (self._temp is not None or self._direct_close):
            try:
                stream.close()
            except OSError:
                pass
        if self._temp is not None:
            try:
                self._temp.unlink()
            except OSError:
                pass
            self._temp = None
        for d in reversed(self._made_dirs):
            try:
                d.rmdir()
            except OSError:
                break
        self._made_dirs = []

    def _error(self, exc: OSError, where: Path | None = None) -> OutputError:
        what = exc.strerror or type(exc).__name__
        return OutputError(f"cannot write {where if where is not None else self.target}: {what}")
