"""Hypothesis profiles, input strategies and the regression store shared by the fuzz tests.

Profiles (environment variable `ASR_FUZZ_PROFILE`):

- `ci` (default): a few dozen examples per test, derandomized (the same inputs every run, so
  CI never turns red by luck), no example database.
- `long`: `ASR_FUZZ_EXAMPLES` examples per test (default 2000), random, a 10 s deadline per
  example, database in a temporary directory (`ASR_FUZZ_DB`, set by
  `python -m tests.reliability.soak fuzz`).

Every input that broke a property is written to `tests/reliability/regressions/<kind>/`
(the minimal example hypothesis ends with) and replayed by `test_regressions.py` forever.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.helpers import encode, speechlike

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
PROFILE = os.environ.get("ASR_FUZZ_PROFILE", "ci")
_COMMON: dict[str, Any] = {"suppress_health_check": list(HealthCheck), "print_blob": True}

settings.register_profile("reliability-ci", database=None, derandomize=True, deadline=None, **_COMMON)
settings.register_profile("reliability-long", database=DirectoryBasedExampleDatabase(os.environ["ASR_FUZZ_DB"]) if os.environ.get("ASR_FUZZ_DB") else None,
                          derandomize=False, deadline=10_000, **_COMMON)  # 10 s: catches a pathological input, not a busy machine

F = TypeVar("F", bound=Callable[..., Any])


def fuzz_settings(ci_examples: int) -> Callable[[F], F]:
    """`ci_examples` examples in the CI profile; `ASR_FUZZ_EXAMPLES` (default 2000) in the long one."""
    if PROFILE == "long":
        return settings(settings.get_profile("reliability-long"), max_examples=int(os.environ.get("ASR_FUZZ_EXAMPLES", "2000")))
    return settings(settings.get_profile("reliability-ci"), max_examples=ci_examples)


def count(label: str) -> None:
    """`hypothesis.event` inside a fuzz test (shown by --hypothesis-show-statistics); nothing in a replay."""
    if currently_in_test_context():
        event(label)


# --- the regression store ----------------------------------------------------------------

class Recorder:
    """Remembers the input of the last failing example; the conftest hook saves it when the test fails."""

    def __init__(self) -> None:
        self.last: tuple[str, bytes, str] | None = None  # (kind, payload, extension)

    def record(self, kind: str, payload: bytes, extension: str = "bin") -> None:
        self.last = (kind, payload, extension)

    def save(self) -> Path | None:
        if self.last is None:
            return None
        kind, payload, extension = self.last
        self.last = None
        folder = REGRESSIONS / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"found-{hashlib.sha1(payload).hexdigest()[:12]}.{extension}"
        path.write_bytes(payload)
        return path


RECORDER = Recorder()


def guarded(kind: str, payload: bytes, check: Callable[[], None], extension: str = "bin") -> None:
    """Run `check`; if it fails, remember `payload` as a regression candidate and re-raise."""
    try:
        check()
    except BaseException:
        RECORDER.record(kind, payload, extension)
        raise


# HTTP regressions are stored as a tiny request file: "POST <path>\n<content-type>\n\n<body>".
def http_payload(path: str, content_type: str, body: bytes) -> bytes:
    return f"POST {path}\n{content_type}\n\n".encode() + body


def parse_http_payload(payload: bytes) -> tuple[str, str, bytes]:
    head, _, body = payload.partition(b"\n\n")
    request_line, _, content_type = head.decode("utf-8", "surrogateescape").partition("\n")
    return request_line.split(" ", 1)[1], content_type, body


# WebSocket regressions: a JSON list of frames {"opcode": int, "data": base64, "fin": bool}.
def frames_payload(frames: list[tuple[int, bytes, bool]]) -> bytes:
    return json.dumps([{"opcode": op, "data": base64.b64encode(data).decode(), "fin": fin} for op, data, fin in frames], indent=1).encode()


def parse_frames_payload(payload: bytes) -> list[tuple[int, bytes, bool]]:
    return [(f["opcode"], base64.b64decode(f["data"]), bool(f.get("fin", True))) for f in json.loads(payload)]


# --- audio inputs -------------------------------------------------------------------------

def _seeds() -> dict[str, bytes]:
    wave = speechlike(0.25, 16000, seed=7)
    stereo = speechlike(0.1, 44100, seed=8, channels=2)
    seeds = {
        "wav16": encode(wave, 16000, subtype="PCM_16"),
        "wav-float-stereo": encode(stereo, 44100, subtype="FLOAT"),
        "wav-u8": encode(speechlike(0.1, 8000, seed=9), 8000, subtype="PCM_U8"),
        "wav24": encode(speechlike(0.1, 48000, seed=10), 48000, subtype="PCM_24"),
        "flac": encode(wave, 16000, format="FLAC", subtype="PCM_16"),
        "ogg-vorbis": encode(speechlike(0.3, 22050, seed=11), 22050, format="OGG", subtype="VORBIS"),
        "ogg-opus": encode(speechlike(0.2, 48000, seed=12), 48000, format="OGG", subtype="OPUS"),
        "mp3": encode(speechlike(0.3, 44100, seed=13), 44100, format="MP3", subtype="MPEG_LAYER_III"),
    }
    for fmt, subtype in (("AIFF", "PCM_16"), ("AU", "PCM_16"), ("CAF", "PCM_16"), ("W64", "PCM_16"), ("RF64", "PCM_16"), ("NIST", "PCM_16"),
                         ("VOC", "PCM_16"), ("IRCAM", "PCM_16"), ("MAT5", "DOUBLE"), ("WAVEX", "FLOAT"), ("SVX", "PCM_16"), ("XI", "DPCM_16")):
        try:
            seeds[fmt.lower()] = encode(speechlike(0.05, 16000, seed=14), 16000, format=fmt, subtype=subtype)
        except Exception:  # noqa: BLE001 - a libsndfile build without this format
            pass
    return seeds


SEEDS = _seeds()

NON_AUDIO = [
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" * 4,
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
    b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100),
    b'{"text": "not audio"}',
    b"<html><body>hello</body></html>",
    b"ID3\x04\x00\x00\x00\x00\x00\x00",
    b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + bytes(32),
    b"OggS" + bytes(60),
    b"fLaC",
    b"RIFF",
    b"RIFF\xff\xff\xff\xffWAVE",
    b"\xff\xfb\x90\x00" * 64,  # MPEG frame headers with no data
    b"\x00" * 1024,
    "ünïcödé text \u202e".encode(),
]

RATES = [0, 1, 999, 1000, 8000, 16000, 44100, 384000, 384001, 0x7FFFFFFF, 0xFFFFFFFF]
CHANNELS = [0, 1, 2, 8, 64, 65, 255, 0xFFFF]
SIZES = [0, 1, 2, 3, 0x7FFFFFFF, 0xFFFFFFFF]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, 1e38, -1e38, 0.0, 1.0, -1.0, 5e-324]


@st.composite
def crafted_wav(draw: st.DrawFn) -> bytes:
    """A RIFF/WAVE file built field by field: any format tag, rate, channel count, width, sizes and samples."""
    tag = draw(st.sampled_from([1, 3, 0xFFFE, 6, 7, 0x55]) | st.integers(0, 0xFFFF))
    channels = draw(st.sampled_from(CHANNELS) | st.integers(0, 0xFFFF))
    rate = draw(st.sampled_from(RATES) | st.integers(0, 0xFFFFFFFF))
    bits = draw(st.sampled_from([0, 8, 16, 24, 32, 64, 7, 0xFFFF]))
    block_align = draw(st.sampled_from([max(channels * bits // 8, 0) & 0xFFFF, 0, 1, 0xFFFF]))
    if tag == 3 and draw(st.booleans()):
        samples = draw(st.lists(st.sampled_from(SPECIAL_FLOATS) | st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=0, max_size=256))
        payload = np.asarray(samples, dtype="<f4").tobytes()
    else:
        payload = draw(st.binary(max_size=2048))
    data_size = draw(st.sampled_from([len(payload)] + SIZES))
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block_align) & 0xFFFFFFFF, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size) + payload
    riff_size = draw(st.sampled_from([len(body), 0, 0xFFFFFFFF, 4]))
    return b"RIFF" + struct.pack("<I", riff_size) + body


@st.composite
def crafted_flac(draw: st.DrawFn) -> bytes:
    """A FLAC STREAMINFO with any rate (20 bits), channels, width and total sample count (36 bits), then a real or random tail."""
    rate = draw(st.integers(0, (1 << 20) - 1) | st.sampled_from([0, 1, 999, 16000, 655350, (1 << 20) - 1]))
    channels = draw(st.integers(0, 7))
    bits = draw(st.integers(0, 31))
    total = draw(st.integers(0, (1 << 36) - 1) | st.sampled_from([0, 1, (1 << 36) - 1]))
    packed = (rate << 44) | (channels << 41) | (bits << 36) | total
    info = struct.pack(">HHBBBBBB", 4096, 4096, 0, 0, 16, 0, 0, 0)[:10] + packed.to_bytes(8, "big") + bytes(16)
    header = b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info
    real = SEEDS["flac"]
    tail = draw(st.sampled_from([b"", real[42:], real[42:300]]) | st.binary(max_size=512))
    return header + tail


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real file of some format with its header (mostly) corrupted: truncated, overwritten, spliced."""
    data = bytearray(draw(st.sampled_from(sorted(SEEDS.values(), key=len))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "byte", "u32", "u16", "splice", "delete"]))
        if not data:
            break
        where = draw(st.integers(0, min(len(data) - 1, 96)) | st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[where:]
        elif kind == "byte":
            data[where] = draw(st.integers(0, 255))
        elif kind == "u32":
            value = draw(st.sampled_from(SIZES + RATES) | st.integers(0, 0xFFFFFFFF))
            data[where : where + 4] = struct.pack(draw(st.sampled_from(["<I", ">I"])), value)
        elif kind == "u16":
            data[where : where + 2] = struct.pack(draw(st.sampled_from(["<H", ">H"])), draw(st.sampled_from(CHANNELS) | st.integers(0, 0xFFFF)))
        elif kind == "splice":
            data[where:where] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[where : where + draw(st.integers(1, 64))]
    return bytes(data)


def audio_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(),
        crafted_wav(),
        crafted_flac(),
        st.sampled_from(NON_AUDIO),
        st.sampled_from(list(SEEDS.values())),
        st.binary(max_size=1024),
        st.sampled_from([b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff", b"\xff\xfb"]).flatmap(lambda magic: st.binary(max_size=512).map(lambda tail: magic + tail)),
    )
