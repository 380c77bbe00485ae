"""Names the service accepts, as types an editor can complete."""

from typing import Literal

TTSVoices = Literal[
    "ara", "eve", "leo", "rex", "sal", "carina", "zagan", "helix", "orion", "luna", "iris",
    "altair", "zenith", "perseus", "helios", "lux", "kepler", "rigel", "cosmo", "celeste",
    "ursa", "sirius", "lumen", "castor", "naksh", "atlas",
]  # fmt: skip

TTSLanguages = Literal[
    "auto", "en", "ar-EG", "ar-SA", "ar-AE", "bn", "zh", "fr", "de", "hi", "id", "it", "ja",
    "ko", "pt-BR", "pt-PT", "ru", "es-MX", "es-ES", "tr", "vi",
]  # fmt: skip

TTSCodecs = Literal["pcm", "mulaw", "alaw", "wav", "mp3"]
TTSSampleRates = Literal[8000, 16000, 22050, 24000, 44100, 48000]
