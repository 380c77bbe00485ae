"""Audio formats: G.711 mu-law and A-law, WAV headers, resampling.

Pure numpy, no I/O.  The emulator uses it to encode what it speaks; the CLI and the
LiveKit face use it to decode telephony codecs and to wrap PCM in a WAV file.
"""

from __future__ import annotations

import struct
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "mulaw_decode",
    "mulaw_encode",
    "parse_wav_header",
    "resample",
    "wav_header",
]

Int16Array = npt.NDArray[np.int16]


def _mulaw_encode_sample(x: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    # ITU-T G.711 mu-law on the 14-bit magnitude, bias 33, as CCITT's reference code does
    v = x >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    v = np.minimum(np.abs(v), 8159) + 33
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), v)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((v >> (seg + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


def _alaw_encode_sample(x: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    sign = np.where(x >= 0, 0x80, 0).astype(np.int32)
    mag = np.minimum(np.where(x >= 0, x, -x - 1), 32767) >> 3  # 13-bit magnitude
    exponent = np.where(mag >= 32, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4, 0)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def _mulaw_decode_byte(u: npt.NDArray[np.int32]) -> npt.NDArray[np.int16]:
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = ((mantissa << 3) + 0x84) << exponent
    return np.where(sign != 0, 0x84 - mag, mag - 0x84).astype(np.int16)


def _alaw_decode_byte(a: npt.NDArray[np.int32]) -> npt.NDArray[np.int16]:
    a = a ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    mag = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(sign != 0, mag, -mag).astype(np.int16)


@cache
def _tables() -> dict[str, np.ndarray]:
    # Encoding by table lookup over all 65,536 sample values is exact and fast.
    every_sample = np.arange(-32768, 32768, dtype=np.int32)
    every_byte = np.arange(256, dtype=np.int32)
    return {
        "mulaw_enc": _mulaw_encode_sample(every_sample),
        "alaw_enc": _alaw_encode_sample(every_sample),
        "mulaw_dec": _mulaw_decode_byte(every_byte),
        "alaw_dec": _alaw_decode_byte(every_byte),
    }


def mulaw_encode(pcm: Int16Array) -> bytes:
    return bytes(_tables()["mulaw_enc"][pcm.astype(np.int32) + 32768].tobytes())


def alaw_encode(pcm: Int16Array) -> bytes:
    return bytes(_tables()["alaw_enc"][pcm.astype(np.int32) + 32768].tobytes())


def mulaw_decode(data: bytes) -> Int16Array:
    table: Int16Array = _tables()["mulaw_dec"]
    return table[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    table: Int16Array = _tables()["alaw_dec"]
    return table[np.frombuffer(data, dtype=np.uint8)]


def resample(pcm: Int16Array, src_rate: int, dst_rate: int) -> Int16Array:
    """Linear-interpolation resampling: plenty for an emulator's voice, and dependency-free."""
    if src_rate == dst_rate or len(pcm) == 0:
        return pcm
    n_out = round(len(pcm) * dst_rate / src_rate)
    x_out = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    out = np.interp(x_out, np.arange(len(pcm), dtype=np.float64), pcm.astype(np.float64))
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def wav_header(sample_rate: int, data_bytes: int, *, channels: int = 1, bits: int = 16,
               format_tag: int = 1) -> bytes:  # fmt: skip
    """A 44-byte RIFF/WAVE header.  ``format_tag`` 1 is PCM, 6 A-law, 7 mu-law."""
    block_align = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        format_tag,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
        b"data",
        data_bytes,
    )


def parse_wav_header(data: bytes) -> tuple[int, int, int, int]:
    """(sample_rate, channels, bits, offset of the data) of a canonical WAV file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    pos = 12
    rate = channels = bits = 0
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, pos + 8)
        elif cid == b"data":
            return rate, channels, bits, pos + 8
        pos += 8 + size
    raise ValueError("WAV file without a data chunk")
