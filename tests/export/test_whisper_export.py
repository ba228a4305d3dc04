"""Whisper-CTC bundles (`export.whisper_ctc`): the manifest, the graphs against PyTorch, the runtime's windows
over the 30 s positional table, the bundle served over HTTP, and `asr-export whisper` on a CTranslate2 model.bin.

A tiny random `WhisperCTC` (written with fp32 and int8) and a tiny random Whisper converted to CTranslate2 in-process
(exported by the CLI with the default: int8 alone) stand in for the real ones. A whole export then the runtime:
the integration tier."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.asr.bundle import AcousticBundle, load_bundles
from app.asr.manifest import Manifest
from app.asr.options import DecodeOptions, resolve
from app.asr.runtime import AcousticModel
from app.asr.tokens import ctc_letters
from app.config import Settings
from app.main import create_app
from export.cli import main as export_main
from export.whisper_ctc import LICENSE_FILE, write_bundle
from models.whisper_ctc import FRAME_STRIDE, WhisperCTC
from tests.helpers import encode, speechlike
from tests.whisper_helpers import build_ct2_whisper, tiny_whisper_ctc

pytestmark = pytest.mark.integration

torch.set_num_threads(1)

NAME, CT2_NAME = "tiny-whisper", "tiny-whisper-ct2"
LONG_SECONDS = 40.0  # over the 30 s the positional table holds: the runtime must window it


def tiny_model() -> WhisperCTC:
    return tiny_whisper_ctc(seed=0)


@pytest.fixture(scope="module")
def model() -> WhisperCTC:
    return tiny_model()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model: WhisperCTC) -> Path:
    """A models directory with the fp32 + int8 bundle of `model` and the CLI's int8-only bundle of a model.bin."""
    root = tmp_path_factory.mktemp("whisper-models")
    write_bundle(model, root / NAME, description={"kind": "test", "seed": 0}, precisions=("fp32", "int8"), log=False)
    model_bin = build_ct2_whisper(tmp_path_factory.mktemp("ct2") / "whisper-tiny-random")
    assert export_main(["whisper", str(model_bin), "-o", str(root / CT2_NAME)]) == 0
    return root


@pytest.fixture(scope="module")
def bundle(served: Path) -> AcousticBundle:
    bundles = load_bundles(served, threads=1)
    assert bundles.failures == {}
    return bundles.acoustic[NAME]


def test_manifest_describes_the_family(served: Path, model: WhisperCTC) -> None:
    manifest = Manifest.load(served / NAME)
    assert (manifest.kind, manifest.architecture, manifest.criterion, manifest.context) == ("acoustic", "whisper_ctc", "ctc", "full")  # fmt: skip
    assert (manifest.sample_rate, manifest.frame_stride, manifest.receptive_field, manifest.min_samples) == (16000, 320, 400, 400)  # fmt: skip
    assert manifest.tokens == ctc_letters() and set(manifest.files) == {"fp32", "int8"}
    assert manifest.input_normalize is False
    # the longest input whose frames fit the positional table (30 s less a sample: 480000 samples would need 1501)
    assert manifest.max_samples == FRAME_STRIDE * 1500 - 1
    assert WhisperCTC.output_frames(manifest.max_samples) == 1500 < WhisperCTC.output_frames(manifest.max_samples + 1)
    frontend = manifest.extra["frontend"]
    assert frontend["kind"] == "whisper_log_mel"
    assert (frontend["n_fft"], frontend["hop"], frontend["n_mels"], frontend["mel"]) == (400, 160, 80, "slaney")
    assert manifest.extra["config"] == model.config.to_json() and manifest.extra["emissions"] == "log_softmax"
    assert manifest.extra["license"] == LICENSE_FILE and set(manifest.side_files) == {LICENSE_FILE}
    notice = (served / NAME / manifest.side_files[LICENSE_FILE].path).read_text()
    assert "MIT License" in notice and "Copyright (c) 2022 OpenAI" in notice
    assert manifest.parity["fp32"]["cases"] == 10 and manifest.parity["fp32"]["max_relative_error"] <= 1e-4
    assert manifest.parity["int8"]["greedy_agreement"] >= 0.95


def test_served_graphs_match_pytorch(bundle: AcousticBundle, model: WhisperCTC) -> None:
    wave = speechlike(3.0, seed=2)
    with torch.no_grad():
        reference = model(torch.from_numpy(wave)[None])[0][0].numpy()
    fp32, int8 = bundle.models["fp32"].emissions(wave), bundle.models["int8"].emissions(wave)
    assert fp32.shape == int8.shape == reference.shape == (WhisperCTC.output_frames(len(wave)), 29)
    assert float(np.abs(fp32 - reference).max()) <= 1e-4 * float(np.abs(reference).max())
    assert float((int8.argmax(-1) == reference.argmax(-1)).mean()) >= 0.9


@pytest.mark.parametrize("seconds", [30.0, LONG_SECONDS])
def test_long_input_is_windowed_to_fit_the_positional_table(
    bundle: AcousticBundle, model: WhisperCTC, seconds: float
) -> None:
    """30 s exactly (one frame more than the table holds) and 40 s. Every window must fit the table, and each window's
    frames are exactly PyTorch's on that window's samples (no frame dropped, repeated or shifted at the seams)."""
    acoustic = bundle.models["fp32"]
    geometry = acoustic.geometry
    assert geometry.max_samples == FRAME_STRIDE * 1500 - 1
    assert WhisperCTC.output_frames(geometry.span(0, acoustic.window_frames + 2 * acoustic.overlap_frames)[1]) <= 1500
    wave = speechlike(seconds, seed=3)
    emissions = acoustic.emissions(wave)
    padded = acoustic.pad(wave)
    total = geometry.frames(len(padded))
    assert WhisperCTC.output_frames(len(padded)) > 1500  # one pass would not fit: the windowed path ran
    assert emissions.shape == (total, 29) and np.isfinite(emissions).all()
    np.testing.assert_allclose(np.logaddexp.reduce(emissions, axis=-1), 0.0, atol=1e-4)
    windows = 0
    for first in range(0, total, acoustic.window_frames):
        last = min(first + acoustic.window_frames, total)
        lo, hi = max(first - acoustic.overlap_frames, 0), min(last + acoustic.overlap_frames, total)
        start, end = geometry.span(lo, hi)
        with torch.no_grad():
            reference = model(torch.from_numpy(wave[start:end])[None])[0][0, first - lo : last - lo].numpy()
        np.testing.assert_allclose(emissions[first:last], reference, atol=1e-4, err_msg=f"window [{first}, {last})")
        windows += 1
    assert windows == 2


def test_windowing_needs_room_for_its_overlap(bundle: AcousticBundle) -> None:
    acoustic = bundle.models["fp32"]
    small = AcousticModel(acoustic.session, acoustic.geometry, window_frames=100)
    assert small.window_frames == 100  # a window asked for that fits is kept
    geometry = dataclasses.replace(acoustic.geometry, max_samples=320 * 200)
    with pytest.raises(ValueError, match="max_samples"):
        AcousticModel(acoustic.session, geometry)  # 200 frames cannot hold 150 of overlap on each side


def test_cli_bundle_of_a_model_bin_ships_int8_alone(served: Path) -> None:
    manifest = Manifest.load(served / CT2_NAME)
    assert manifest.architecture == "whisper_ctc" and set(manifest.files) == {"int8"}
    assert manifest.source["kind"] == "ctranslate2" and manifest.extra["config"]["n_heads"] == 4
    assert manifest.extra["config"]["n_layers"] == 2 and (served / CT2_NAME / LICENSE_FILE).is_file()
    assert not (served / CT2_NAME / "model.onnx").exists()  # the fp32 graph was used for the checks, then dropped
    bundle = load_bundles(served, threads=1).acoustic[CT2_NAME]
    assert set(bundle.models) == {"int8"} and bundle.default_precision == "int8"
    assert bundle.model() is bundle.models["int8"] and resolve(DecodeOptions(), bundle).precision == "int8"
    emissions = bundle.model().emissions(speechlike(1.0, seed=4))
    assert emissions.shape == (WhisperCTC.output_frames(16000), 29) and np.isfinite(emissions).all()


@pytest.fixture(scope="module")
def whisper_client(served: Path) -> Iterator[TestClient]:
    settings = Settings(models_dir=served, default_model=NAME, threads=1, workers=1, max_streams=2)
    with TestClient(create_app(settings)) as c:
        yield c


def test_models_are_listed_with_their_precisions(whisper_client: TestClient) -> None:
    models = {m["id"]: m for m in whisper_client.get("/v1/models").json()["data"]}
    assert models[NAME]["precisions"] == ["fp32", "int8"] and models[NAME]["default"]
    assert models[CT2_NAME]["precisions"] == ["int8"] and models[CT2_NAME]["architecture"] == "whisper_ctc"


@pytest.mark.parametrize("name", [NAME, CT2_NAME])
def test_transcribe_over_http(whisper_client: TestClient, name: str) -> None:
    wav = encode(speechlike(2.0, seed=5), 16000, subtype="PCM_16")
    r = whisper_client.post("/v1/transcribe", params={"model": name}, files={"file": ("a.wav", wav, "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == name and isinstance(body["text"], str) and body["duration"] == pytest.approx(2.0)


def test_transcribe_past_the_positional_table_over_http(whisper_client: TestClient) -> None:
    wav = encode(speechlike(LONG_SECONDS, seed=6), 16000, subtype="PCM_16")
    r = whisper_client.post("/v1/transcribe", params={"model": NAME}, content=wav)
    assert r.status_code == 200, r.text
    assert r.json()["duration"] == pytest.approx(LONG_SECONDS)


def test_an_int8_only_bundle_has_no_fp32_to_ask_for(whisper_client: TestClient) -> None:
    wav = encode(speechlike(1.0, seed=7), 16000, subtype="PCM_16")
    r = whisper_client.post("/v1/transcribe", params={"model": CT2_NAME, "precision": "fp32"}, content=wav)
    assert 400 <= r.status_code < 500 and "int8" in r.json()["error"]["message"]
    r = whisper_client.post("/v1/transcribe", params={"model": CT2_NAME, "precision": "int8"}, content=wav)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("piece", [320, 4000, 48000])
def test_stream_finals_are_their_utterances_decoded_whole(bundle: AcousticBundle, served: Path, piece: int) -> None:
    """Full-context streams: partials come from the sliding window, but each final is its utterance's audio
    run again in one pass and decoded, which is what a file of that utterance gives (`whole_finals`)."""
    from app.asr.recognizer import Recognizer
    from app.asr.streaming import Stream, StreamOptions

    recognizer = Recognizer(load_bundles(served, threads=1), default_model=NAME)
    acoustic = recognizer.bundle(NAME).models["fp32"]
    audio = speechlike(5.0, seed=4)
    options = DecodeOptions(decoder="greedy", vtln=False)
    stream = Stream(recognizer, recognizer.bundle(NAME), acoustic, options, StreamOptions(endpoint_silence=1e9, max_utterance=1.5))
    results = [r for start in range(0, len(audio), piece) for r in stream.accept(audio[start : start + piece])] + stream.finish()
    finals = [r for r in results if r.kind == "final"]
    assert len(finals) >= 3 and any(r.kind == "partial" for r in results)
    frame = acoustic.geometry.stride / 16000
    for r in finals:
        a, b = round(r.start / frame), round(r.end / frame)
        first, end = acoustic.geometry.span(a, b)
        alone = acoustic.emissions(audio[first:end])[: b - a]
        expected = recognizer.decode(recognizer.bundle(NAME), alone, options, duration=(b - a) * frame, frame_offset=a)
        assert r.transcript is not None and r.transcript.text == expected.text and r.transcript.words == expected.words
    assert finals[-1].end == pytest.approx(len(audio) / 16000, abs=0.05)
