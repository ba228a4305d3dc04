"""Audio input: bytes in any format libsndfile reads -> float32 mono at the model's rate.

WAV (8/16/24/32-bit integer and float), FLAC, OGG/Vorbis, Opus and MP3 go through
soundfile. The header is read first so a small file that declares hours of audio (a
decompression bomb) is refused by the duration limit before anything is decoded; formats
whose header cannot be trusted for a length (MP3) are decoded in blocks and stopped at
the limit. Resampling uses soxr's high-quality mode; channels are averaged.

Every path where samples enter (files, `WS /v1/stream` frames, Realtime appends) goes through
`check_samples`: NaN or infinite samples are refused with `InvalidAudio`, and finite samples
beyond full scale are clipped to [-1, 1], as a sound card would. So no input can drive the
acoustic model to infinite activations and NaN emissions (`f32le` frames of 1e38 did).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from app.asr.errors import AudioTooLong, EmptyAudio, InvalidAudio

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64
FULL_SCALE = 1.0  # float samples are clipped to [-FULL_SCALE, FULL_SCALE]
_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 [N], mono, at `sample_rate`
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(data: bytes, *, sample_rate: int, max_seconds: float) -> Audio:
    """Decode, check, downmix and resample. Raises `InvalidAudio`, `EmptyAudio`, `AudioTooLong`."""
    if not data:
        raise EmptyAudio("the request carries no audio (empty body or file)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, declared = f.samplerate, f.channels, f.frames
            _check_header(rate, channels)
            if f.format not in ("MPEG",) and declared > max_seconds * rate:
                raise AudioTooLong(f"audio lasts {declared / rate:.1f} s, over the limit of {max_seconds:g} s")
            blocks = []
            read = 0
            limit = int(max_seconds * rate) + 1
            while True:
                block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                read += len(block)
                if read > limit:
                    raise AudioTooLong(f"audio lasts over the limit of {max_seconds:g} s")
                blocks.append(block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0])
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError, OverflowError, MemoryError) as e:
        raise InvalidAudio(f"could not decode the audio: {_describe(e)}") from e
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return prepare_samples(samples, rate=rate, sample_rate=sample_rate)


def prepare_samples(samples: np.ndarray, *, rate: int, sample_rate: int) -> Audio:
    """Check decoded mono samples and resample them to `sample_rate`."""
    _check_header(rate, 1)
    if len(samples) == 0:
        raise EmptyAudio("the audio has no samples")
    samples = check_samples(samples)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
        if len(samples) == 0:  # a few samples at a higher rate can resample to none
            raise EmptyAudio(f"the audio is shorter than one sample at {sample_rate} Hz")
    return Audio(np.ascontiguousarray(samples), sample_rate)


def check_samples(samples: np.ndarray) -> np.ndarray:
    """float32 samples within full scale: refuses NaN/infinity (`InvalidAudio`), clips the rest.

    Integer PCM is within full scale by construction; float input (WAV/FLAC float, `f32le`) may
    carry any finite value, and values near float32's maximum overflow the model's first layers
    to infinity and NaN. Clipping keeps the samples of every path within [-1, 1] the same way."""
    samples = np.asarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InvalidAudio("the audio contains NaN or infinite samples")
    if len(samples) and float(np.abs(samples).max()) > FULL_SCALE:
        samples = np.clip(samples, -FULL_SCALE, FULL_SCALE)
    return samples


def _check_header(rate: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio(f"sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InvalidAudio(f"{channels} channels is outside 1..{MAX_CHANNELS}")


_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")  # `<_io.BytesIO object at 0x7f...>`: a heap address


def _describe(error: Exception) -> str:
    """The first line of a decoder's message, with Python object reprs (heap addresses) left out."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return _OBJECT_REPR.sub("the audio", text)[:200]


def pcm_to_float(data: bytes, encoding: str) -> np.ndarray:
    """Raw little-endian PCM (`pcm_s16le` or `f32le`) to float32; the byte count must be whole samples."""
    if encoding == "pcm_s16le":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if encoding == "f32le":
        return check_samples(np.frombuffer(data, dtype="<f4").astype(np.float32))
    raise InvalidAudio(f"unknown encoding {encoding!r}; expected 'pcm_s16le' or 'f32le'")


# -- G.711 (the Realtime API's g711_ulaw and g711_alaw): 8-bit codes -> 16-bit little-endian PCM, by table



def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code >> 4) & 7)) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype("<i2")


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype("<i2")


G711_TABLES = {"g711_ulaw": _ulaw_table(), "g711_alaw": _alaw_table()}


def g711_to_pcm16(data: bytes, law: str) -> bytes:
    """G.711 bytes (`g711_ulaw` or `g711_alaw`) -> 16-bit little-endian PCM, one sample per byte."""
    return G711_TABLES[law][np.frombuffer(data, np.uint8)].tobytes()
