"""The model bundle schema, shared by `export/` (which writes it) and the server (which reads it).

A bundle is a directory holding `manifest.json`, one ONNX file per precision and side files
(ASG transitions, n-gram LM, lexicon). Everything the runtime needs to turn audio into text
is in the manifest, so the server hard-codes no sample rate, stride, blank or tensor name.

Acoustic ONNX graphs take `waveform` `[B, N]` float32 at `sample_rate` and return
`emissions` `[B, T, V]`. Output frame `t` depends only on padded input samples
`[t * frame_stride, t * frame_stride + receptive_field)` when `context == "exact"`
(convolutional models): then long files and streams are computed window by window with
exactly the context each frame needs, and equal the one-pass result. Attention models
(`context == "full"`) see the whole input and are windowed with overlap instead.

Punctuation graphs (`kind == "punctuation"`, `app.asr.punctuation`) take `words` and `suffixes`
`[B, T]` int64 (ids from the bundle's vocabulary side file) and return `case_logits` `[B, T, C]`
and `mark_logits` `[B, T, M]`; `Manifest.punctuation` names their labels and side files.

Language-model graphs (`kind == "lm"`) take `tokens` `[B, T]` int64 and the memories of all
layers stacked, `mems_in` `[n_layer, B, M, d_model]`, and return `logits` `[B, T, V]`, the
new memories and each layer's input at the current positions (see `app.asr.rescoring`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.asr.tokens import TokenTable

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
Kind = Literal["acoustic", "lm", "punctuation"]
Architecture = Literal["wav2letter", "wav2vec2", "whisper_ctc", "transformer_xl", "punctuation_tagger"]
KINDS: tuple[str, ...] = ("acoustic", "lm", "punctuation")
ARCHITECTURES: tuple[str, ...] = ("wav2letter", "wav2vec2", "whisper_ctc", "transformer_xl", "punctuation_tagger")
Criterion = Literal["ctc", "asg"]
Precision = Literal["fp32", "int8", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8", "fp16")


class ManifestError(ValueError):
    """A bundle's manifest is missing, malformed, of an unknown version, or its files fail checks."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str


@dataclass(frozen=True)
class DecodingDefaults:
    """Decoder settings the bundle was tuned with; requests may override them."""

    decoder: Literal["greedy", "beam"] = "greedy"
    beam_size: int = 16
    beam_threshold: float = 12.0  # prune tokens and hypotheses this far below the best (log domain)
    lm: str | None = None  # ARPA file inside the bundle
    lexicon: str | None = None  # word list with spellings inside the bundle
    lm_weight: float = 0.5
    word_score: float = 0.0
    silence_score: float = 0.0
    unk_score: float = -10.0  # cost of a word outside the lexicon (allow_oov)
    allow_oov: bool = True  # lexicon search may spell words the lexicon lacks
    hotword_boost: float = 5.0  # default boost of a hotword given without one
    rescorer: str | None = None  # name of the Transformer-XL LM bundle used for rescoring
    rescore_alpha: float = 0.5
    rescore_beta: float = 0.0
    vtln_warps: tuple[float, ...] = ()  # speaker normalisation: frequency warps tried per file (app.asr.vtln); () off

    def __post_init__(self) -> None:
        warps = tuple(float(w) for w in self.vtln_warps)
        if any(not 0.5 <= w <= 2.0 for w in warps):
            raise ValueError(f"vtln_warps must lie in 0.5..2.0, got {warps}")
        object.__setattr__(self, "vtln_warps", warps)


@dataclass(frozen=True)
class PunctuationSpec:
    """What a punctuation bundle's runtime needs besides the graph (see `app.asr.punctuation_text`)."""

    vocabulary: str  # side file: one word per line; word id = line index + 2 (0 pads, 1 unknown)
    known_forms: str  # side file: JSON {word: form} for the `known` case ("mcdonald": "McDonald", "mr": "Mr.")
    cases: tuple[str, ...]  # case labels in logit order
    marks: tuple[str, ...]  # marks in logit order ("" first)
    suffix_buckets: int  # suffix ids are crc32(last three letters) % suffix_buckets + 1
    max_words: int  # longest window the graph takes
    window: int = 128  # words per window for long transcripts
    overlap: int = 32  # words of context on each side of a window's kept centre

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "marks", tuple(self.marks))
        if not 0 <= 2 * self.overlap < self.window <= self.max_words:
            raise ValueError(f"punctuation window {self.window} / overlap {self.overlap} must satisfy 2*overlap < window <= max_words ({self.max_words})")


@dataclass(frozen=True)
class CacheEntry:
    """One cached left context of a streaming graph (see `app.asr.stream_graph`)."""

    name: str  # graph input; the updated cache is the output `name + "_out"`
    shape: tuple[int, ...]  # steady shape without the batch axis

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))


@dataclass(frozen=True)
class StreamingSpec:
    """The listed precisions' graphs also stream with per-layer caches: besides `waveform` they take
    `caches` (optional inputs, empty by default) and return them updated beside `emissions`;
    chunks are whole multiples of `frame_stride` samples."""

    caches: tuple[CacheEntry, ...]
    precisions: tuple[str, ...] = ("fp32",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "caches", tuple(c if isinstance(c, CacheEntry) else CacheEntry(**c) for c in self.caches))
        object.__setattr__(self, "precisions", tuple(self.precisions))


@dataclass(frozen=True)
class ChunkedStreamingSpec:
    """The listed precisions' graphs also stream in chunks with a per-layer key/value cache
    (Whisper-CTC trained with a block mask, `app.asr.chunked_stream`): `chunk_frames` frames a
    chunk, each seeing `left_chunks` chunks before it (`cache_frames` keys and values per layer
    of width `width`, `layers` layers); a segment holds at most `max_frames` frames (its
    positional table), after which a stream starts a new one."""

    chunk_frames: int
    left_chunks: int
    cache_frames: int
    layers: int
    width: int
    max_frames: int = 1500
    precisions: tuple[str, ...] = ("int8",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "precisions", tuple(self.precisions))
        if self.chunk_frames < 1 or self.cache_frames < self.chunk_frames or self.max_frames < 2 * self.chunk_frames:
            raise ValueError(f"chunked streaming needs 1 <= chunk_frames <= cache_frames and 2 chunks in max_frames, got {self}")


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: Kind
    architecture: Architecture
    tokens: TokenTable
    files: dict[str, FileEntry]  # precision -> ONNX file
    criterion: Criterion | None = None
    transitions: str | None = None  # `.npy` file `[V, V]`, transitions[next, prev] (ASG)
    sample_rate: int = 16000
    frame_stride: int = 320  # input samples per output frame
    receptive_field: int = 400  # input samples one output frame depends on (exact context)
    left_pad: int = 0  # zeros the runtime prepends before the first window
    right_pad: int = 0  # zeros the runtime appends after the last window
    context: Literal["exact", "full"] = "exact"
    input_normalize: bool = False  # zero-mean unit-variance per utterance, done in the graph
    min_samples: int = 400  # shortest input the graph accepts (the runtime pads up to it)
    max_samples: int | None = None  # longest input the graph accepts (a positional table); the runtime windows longer ones to fit
    side_files: dict[str, FileEntry] = field(default_factory=dict)
    decoding: DecodingDefaults = field(default_factory=DecodingDefaults)
    parity: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # architecture details (LM sizes ...)
    punctuation: PunctuationSpec | None = None  # kind "punctuation" only
    streaming: StreamingSpec | None = None  # acoustic graphs that also stream with per-layer caches
    chunked_streaming: ChunkedStreamingSpec | None = None  # full-context graphs that also stream in chunks with a key/value cache
    default: bool = False  # acoustic: served to requests that name no model (app.asr.recognizer.pick_default)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = self.tokens.to_json()
        return data

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError("manifest must be a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"unknown bundle format_version {version!r} (this server reads {FORMAT_VERSION})")
        try:
            data = dict(data)
            tok = data.pop("tokens", {"tokens": []})
            tokens = TokenTable(
                tokens=tuple(tok["tokens"]),
                word_separator=tok.get("word_separator", "|"),
                blank=tok.get("blank"),
                repetition_labels=int(tok.get("repetition_labels", 0)),
                special=tuple(tok.get("special", ())),
            )
            files = {k: FileEntry(**v) for k, v in data.pop("files").items()}
            side = {k: FileEntry(**v) for k, v in data.pop("side_files", {}).items()}
            decoding = DecodingDefaults(**data.pop("decoding", {}))
            punctuation = data.pop("punctuation", None)
            punctuation = PunctuationSpec(**punctuation) if punctuation is not None else None
            streaming = data.pop("streaming", None)
            streaming = StreamingSpec(**streaming) if streaming is not None else None
            chunked = data.pop("chunked_streaming", None)
            chunked = ChunkedStreamingSpec(**chunked) if chunked is not None else None
            manifest = cls(tokens=tokens, files=files, side_files=side, decoding=decoding, punctuation=punctuation, streaming=streaming,
                           chunked_streaming=chunked, **data)  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestError(f"malformed manifest: {e}") from e
        manifest.validate()
        return manifest

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ManifestError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.architecture not in ARCHITECTURES:
            raise ManifestError(f"unknown architecture {self.architecture!r}")
        if self.kind == "punctuation":
            if not self.files:
                raise ManifestError("manifest lists no ONNX file")
            if self.punctuation is None:
                raise ManifestError("a punctuation bundle must describe its labels and side files (punctuation)")
            for name in (self.punctuation.vocabulary, self.punctuation.known_forms):
                if name not in {entry.path for entry in self.side_files.values()}:
                    raise ManifestError(f"punctuation side file {name!r} is not listed in side_files")
        elif self.kind == "acoustic" and not {"fp32", "int8"} & set(self.files):
            raise ManifestError("manifest lists neither an fp32 nor an int8 ONNX file")  # int8 alone: a bundle ships what the server runs
        elif self.kind != "acoustic" and "fp32" not in self.files:
            raise ManifestError("manifest lists no fp32 ONNX file")
        for precision in self.files:
            if precision not in PRECISIONS:
                raise ManifestError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
        if self.kind == "acoustic":
            if self.criterion not in ("ctc", "asg"):
                raise ManifestError(f"unknown criterion {self.criterion!r}; expected 'ctc' or 'asg'")
            if self.criterion == "ctc" and self.tokens.blank is None:
                raise ManifestError("a CTC bundle must name its blank token")
            if self.criterion == "asg" and not self.transitions:
                raise ManifestError("an ASG bundle must name its transitions file")
            if self.frame_stride <= 0 or self.receptive_field <= 0 or self.sample_rate <= 0:
                raise ManifestError("frame_stride, receptive_field and sample_rate must be positive")
            if self.max_samples is not None and self.max_samples < max(self.min_samples, self.receptive_field):
                raise ManifestError(f"max_samples {self.max_samples} is below min_samples / receptive_field")
            if self.streaming is not None and self.context != "exact":
                raise ManifestError("only exact-context bundles stream with caches (streaming needs context 'exact')")
            if self.chunked_streaming is not None and (self.streaming is not None or self.context != "full"):
                raise ManifestError("chunked_streaming is for full-context graphs, and not beside streaming")
            if self.chunked_streaming is not None and not set(self.chunked_streaming.precisions) <= set(self.files):
                raise ManifestError(f"chunked_streaming names precisions {self.chunked_streaming.precisions} the bundle does not ship")

    @classmethod
    def load(cls, directory: Path, *, verify: bool = True) -> Manifest:
        """Read and validate `directory/manifest.json`; with `verify`, check every sha256."""
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"{path}: no manifest.json")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestError(f"{path}: not valid JSON ({e})") from e
        try:
            manifest = cls.from_json(data)
        except ManifestError as e:
            raise ManifestError(f"{path}: {e}") from e
        if verify:
            manifest.verify_files(directory)
        return manifest

    def verify_files(self, directory: Path) -> None:
        root = directory.resolve()
        for entry in [*self.files.values(), *self.side_files.values()]:
            file = (directory / entry.path).resolve()
            if root not in file.parents:
                raise ManifestError(f"{directory}: file {entry.path!r} lies outside the bundle")
            if not file.is_file():
                raise ManifestError(f"{file}: listed in the manifest but missing")
            actual = sha256_file(file)
            if actual != entry.sha256:
                raise ManifestError(f"{file}: sha256 mismatch (manifest {entry.sha256[:12]}..., file {actual[:12]}...)")
        if self.transitions and self.transitions not in self.side_files:
            raise ManifestError(f"{directory}: transitions file {self.transitions!r} is not listed in side_files")


def file_entry(directory: Path, name: str) -> FileEntry:
    return FileEntry(path=name, sha256=sha256_file(directory / name))
