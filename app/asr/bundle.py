"""Loading every bundle under a models directory, refusing broken ones one by one.

A broken bundle (bad JSON, unknown version, checksum mismatch, ONNX that will not load)
is reported with the file and the fault and skipped; the others keep serving. Requests
name models only by the names loaded here, never by path, so nothing a client sends can
reach a file outside the models directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.asr.chunked_stream import ChunkedStreamGraph
from app.asr.manifest import MANIFEST_NAME, Manifest, ManifestError
from app.asr.punctuation import Punctuator
from app.asr.runtime import AcousticModel, FrameGeometry, create_session, select_providers
from app.asr.stream_graph import StreamGraph

log = logging.getLogger(__name__)


@dataclass
class AcousticBundle:
    directory: Path
    manifest: Manifest
    models: dict[str, AcousticModel]  # precision -> model
    transitions: np.ndarray | None  # [V, V] ASG transitions[next, prev]
    lm_path: Path | None = None
    lexicon_path: Path | None = None
    _cache: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def default_precision(self) -> str:
        """fp32 where the bundle has it, else int8 (a bundle may ship only the graph the server runs)."""
        return "fp32" if "fp32" in self.models else "int8"

    def model(self, precision: str | None = None) -> AcousticModel:
        return self.models[precision or self.default_precision]


@dataclass
class LMBundle:
    directory: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name


@dataclass
class BundleSet:
    acoustic: dict[str, AcousticBundle] = field(default_factory=dict)
    lms: dict[str, LMBundle] = field(default_factory=dict)
    punctuation: dict[str, Punctuator] = field(default_factory=dict)  # name -> tagger (kind "punctuation")
    failures: dict[str, str] = field(default_factory=dict)  # directory name -> reason


def load_bundles(models_dir: Path, *, threads: int = 1, device: str = "auto", precisions: tuple[str, ...] = ("fp32", "int8")) -> BundleSet:
    """Load every bundle directory (one holding `manifest.json`) directly under `models_dir`."""
    result = BundleSet()
    if not models_dir.is_dir():
        result.failures[str(models_dir)] = "models directory does not exist"
        return result
    providers = select_providers(device)
    for directory in sorted(p for p in models_dir.iterdir() if (p / MANIFEST_NAME).is_file()):
        try:
            manifest = Manifest.load(directory)
            if manifest.name in result.acoustic or manifest.name in result.lms or manifest.name in result.punctuation:
                raise ManifestError(f"{directory}: a bundle named {manifest.name!r} is already loaded")
            if manifest.kind == "lm":
                result.lms[manifest.name] = LMBundle(directory, manifest)
            elif manifest.kind == "punctuation":
                result.punctuation[manifest.name] = Punctuator.from_bundle(directory, manifest, threads=threads, providers=providers)
            else:
                result.acoustic[manifest.name] = load_acoustic(directory, manifest, threads=threads, providers=providers, precisions=precisions)
            log.info("loaded bundle %s from %s", manifest.name, directory)
        except Exception as e:  # noqa: BLE001 - any fault in one bundle must not stop the others
            reason = str(e).splitlines()[0][:300] or type(e).__name__
            result.failures[directory.name] = reason
            log.error("refused bundle %s: %s", directory, reason)
    return result


def load_acoustic(directory: Path, manifest: Manifest, *, threads: int, providers: list[str], precisions: tuple[str, ...]) -> AcousticBundle:
    geometry = FrameGeometry.from_manifest(manifest)
    models = {}
    default = "fp32" if "fp32" in manifest.files else "int8"  # always loaded, whatever `precisions` says
    for precision, entry in manifest.files.items():
        if precision in precisions or precision == default:
            try:
                session = create_session(directory / entry.path, threads=threads, providers=providers)
            except Exception as e:
                raise ManifestError(f"{directory / entry.path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from e
            models[precision] = AcousticModel(session, geometry)
            if manifest.streaming is not None and precision in manifest.streaming.precisions:
                try:
                    models[precision].streaming = StreamGraph(models[precision], manifest.streaming)
                except Exception as e:
                    raise ManifestError(f"{directory / entry.path}: the streaming graph does not run ({str(e).splitlines()[0][:200]})") from e
            if manifest.chunked_streaming is not None and precision in manifest.chunked_streaming.precisions:
                try:
                    models[precision].streaming = ChunkedStreamGraph(session, manifest.chunked_streaming)
                except Exception as e:
                    raise ManifestError(f"{directory / entry.path}: the chunked streaming graph does not fit ({str(e).splitlines()[0][:200]})") from e
    transitions = None
    if manifest.criterion == "asg":
        assert manifest.transitions is not None  # validated by Manifest
        transitions = np.load(directory / manifest.transitions, allow_pickle=False).astype(np.float32)
        if transitions.shape != (len(manifest.tokens), len(manifest.tokens)):
            raise ManifestError(f"{directory / manifest.transitions}: shape {transitions.shape}, expected {(len(manifest.tokens),) * 2}")
    lm = directory / manifest.decoding.lm if manifest.decoding.lm else None
    lexicon = directory / manifest.decoding.lexicon if manifest.decoding.lexicon else None
    return AcousticBundle(directory, manifest, models, transitions, lm, lexicon)
