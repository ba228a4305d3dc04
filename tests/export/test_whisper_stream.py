"""Chunked streaming of Whisper-CTC (`models.whisper_stream`, `export.whisper_stream`, `app.asr.chunked_stream`).

A tiny random model with a fixed mel floor and a block mask (chunks of 4 frames, 2 chunks of left context)
is exported with fp32 and per-row int8. The references are independent of the streaming code: PyTorch's
`WhisperCTC` with full attention for what files get, and one masked PyTorch pass over the whole input for
what streams get; for int8, the graph's own masked pass in one call. Then the server's paths: a `Stream`
whose finals are its utterances decoded whole, and streams batched together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.asr.bundle import AcousticBundle, load_bundles
from app.asr.chunked_stream import ChunkedStreamGraph, stream_emissions
from app.asr.manifest import Manifest, ManifestError
from app.asr.options import DecodeOptions
from export.quantize import quantize_per_row
from export.whisper_ctc import write_bundle
from export.whisper_stream import INT8_STREAM_TOLERANCE, MIN_STREAM_AGREEMENT, graph_masked_emissions, masked_emissions
from models.whisper_ctc import WhisperCTC
from tests.helpers import speechlike
from tests.whisper_helpers import tiny_whisper_ctc

pytestmark = pytest.mark.integration

torch.set_num_threads(1)
NAME = "tiny-chunked"
CHUNK, LEFT = 4, 2


def tiny_model() -> WhisperCTC:
    return tiny_whisper_ctc(seed=1, n_layers=2, chunk_frames=CHUNK, left_chunks=LEFT, mel_floor=-7.0)


@pytest.fixture(scope="module")
def model() -> WhisperCTC:
    return tiny_model()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model: WhisperCTC) -> Path:
    root = tmp_path_factory.mktemp("chunked-models")
    write_bundle(model, root / NAME, description={"kind": "test"}, precisions=("fp32", "int8"), log=False)
    return root


@pytest.fixture(scope="module")
def bundle(served: Path) -> AcousticBundle:
    bundles = load_bundles(served, threads=1)
    assert bundles.failures == {}
    return bundles.acoustic[NAME]


def graph(bundle: AcousticBundle, precision: str) -> ChunkedStreamGraph:
    streaming = bundle.models[precision].streaming
    assert isinstance(streaming, ChunkedStreamGraph)
    return streaming


def test_manifest_names_the_chunked_stream(served: Path) -> None:
    manifest = Manifest.load(served / NAME)
    spec = manifest.chunked_streaming
    assert spec is not None and (spec.chunk_frames, spec.left_chunks, spec.cache_frames, spec.layers, spec.width) == (CHUNK, LEFT, CHUNK * LEFT, 2, 32)
    assert set(spec.precisions) == {"fp32", "int8"} and manifest.context == "full"
    assert manifest.parity["fp32"]["streaming"]["max_relative_error"] <= 1e-4
    assert manifest.parity["int8"]["streaming"]["max_relative_error"] <= INT8_STREAM_TOLERANCE
    assert "floor -7.0" in manifest.extra["frontend"]["log"]


def test_files_get_full_attention(bundle: AcousticBundle, model: WhisperCTC) -> None:
    """Fed only the waveform, the graph is the offline model: every frame sees the whole input."""
    audio = speechlike(3.0, seed=2)
    with torch.no_grad():
        expected = model(torch.from_numpy(audio)[None])[0][0].numpy()
    got = bundle.models["fp32"].emissions(audio)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert np.abs(got - masked_emissions(model, audio)).max() > 1e-3  # the block mask changes frames: the two modes differ


@pytest.mark.parametrize("pattern", [(1,), (1, 7, 311), (320,), (4000,), (100_000,), (12_345, 2, 640)])
def test_streamed_emissions_equal_one_masked_pass(bundle: AcousticBundle, model: WhisperCTC, pattern: tuple[int, ...]) -> None:
    audio = speechlike(2.3 if pattern == (1,) else 6.1, seed=3)
    expected = masked_emissions(model, audio)
    got = stream_emissions(graph(bundle, "fp32"), audio, pattern)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


@pytest.mark.parametrize("samples", [1, 150, 399, 400, 519, 520, 841, 1281, 10_240, 10_440, 10_441])
def test_any_length_streams_exactly(bundle: AcousticBundle, model: WhisperCTC, samples: int) -> None:
    """Around the STFT window, the stem's reach and a chunk's edge: the last frames see the file's own end padding."""
    audio = speechlike(1.0, seed=samples)[:samples]
    expected = masked_emissions(model, audio)
    got = stream_emissions(graph(bundle, "fp32"), audio, (97,))
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


def test_int8_streams_against_its_own_masked_pass(bundle: AcousticBundle, served: Path) -> None:
    """Per-row quantization: a frame's int8 result does not depend on the rest of its call, up to a value
    that float summation order moves across a rounding boundary (`INT8_STREAM_TOLERANCE`)."""
    audio = speechlike(4.0, seed=5)
    session = bundle.models["int8"].session
    expected = graph_masked_emissions(session, audio)
    for pattern in [(1, 999), (50_000,)]:
        got = stream_emissions(graph(bundle, "int8"), audio, pattern)
        assert np.abs(got - expected).max() <= INT8_STREAM_TOLERANCE * np.abs(expected).max()
        assert (got.argmax(-1) == expected.argmax(-1)).mean() >= MIN_STREAM_AGREEMENT


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_batched_streams_equal_streams_alone(bundle: AcousticBundle, precision: str) -> None:
    """Chunks of several streams in one call (different ages and loudness, so different cache fill and
    activation ranges): each row gets what it gets alone."""
    g = graph(bundle, precision)
    audios = [speechlike(3.0, seed=10 + i) * (0.2 + 0.5 * i) for i in range(3)]
    alone = [stream_emissions(g, a, (640,)) for a in audios]
    states = [g.new_state() for _ in audios]
    starts = [0, 3, 5]  # steps at which each stream opens: the later ones are younger
    out: list[list[np.ndarray]] = [[] for _ in audios]
    positions = [0] * len(audios)
    calls, rows = g.calls, g.rows
    for step in range(400):
        due = []
        for i, (state, audio) in enumerate(zip(states, audios, strict=True)):
            if step < starts[i] or positions[i] > len(audio):
                continue
            piece = audio[positions[i] : positions[i] + 640]
            positions[i] += 640
            request = g.take(state, piece, final=positions[i] > len(audio))
            if request is not None:
                due.append((i, request))
        if due:
            g.run([r for _, r in due])
        for i, request in due:
            assert request.result is not None
            out[i].append(request.result)
            while (more := g.take(states[i], final=positions[i] > len(audios[i]))) is not None:
                g.run([more])
                assert more.result is not None
                out[i].append(more.result)
    tolerance = 1e-4 if precision == "fp32" else INT8_STREAM_TOLERANCE  # int8: see test_int8_streams_against_its_own_masked_pass
    for i, expected in enumerate(alone):
        assert np.abs(np.concatenate(out[i]) - expected).max() <= tolerance * np.abs(expected).max()
    assert g.rows - rows > g.calls - calls  # some calls carried several streams


def test_a_stream_over_the_positional_table_starts_new_segments(bundle: AcousticBundle, model: WhisperCTC) -> None:
    """Past 30 s a stream begins a new segment (positions from 0, no cache), computed as a file of its audio."""
    g = graph(bundle, "fp32")
    audio = speechlike(34.0, seed=7)
    got = stream_emissions(g, audio, (16_000,))
    cut = g.spec.max_frames - g.spec.max_frames % CHUNK  # the first segment ends at the last whole chunk in the table
    # a file holds 1500 frames only up to 480,000 samples less one, where the last frame's look-ahead is cut off, and
    # the frames of its chunk see it: compare the chunks before
    first = masked_emissions(model, audio[: cut * 320 - 1])[: cut - CHUNK]
    second = masked_emissions(model, audio[cut * 320 :])
    assert len(got) == cut + len(second)
    np.testing.assert_allclose(got[: cut - CHUNK], first, atol=1e-4 * np.abs(first).max(), rtol=0)
    np.testing.assert_allclose(got[cut:], second, atol=1e-4 * np.abs(second).max(), rtol=0)


@pytest.mark.parametrize("piece", [320, 4000, 48000])
def test_stream_finals_are_their_utterances_decoded_whole(bundle: AcousticBundle, served: Path, piece: int) -> None:
    """Partials and endpoints come from the chunked emissions; each final is its utterance's audio run again with
    full attention, what a file of that utterance gives; after a final the next utterance is a new segment."""
    from app.asr.recognizer import Recognizer
    from app.asr.streaming import Stream, StreamOptions

    recognizer = Recognizer(load_bundles(served, threads=1), default_model=NAME)
    acoustic = recognizer.bundle(NAME).models["int8"]
    audio = speechlike(5.0, seed=4)
    options = DecodeOptions(decoder="greedy", vtln=False)
    stream = Stream(recognizer, recognizer.bundle(NAME), acoustic, options, StreamOptions(endpoint_silence=1e9, max_utterance=1.5))
    assert stream.graph is acoustic.streaming
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
    assert stream.graph_state is not None and stream.graph_state.segment_start > 0  # the finals started new segments


def test_per_row_quantization_against_numpy(tmp_path: Path) -> None:
    """`quantize_per_row` computes what its definition says: int8 weights per column, uint8 activations per row."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from export.onnx_utils import cpu_session

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    graph_ = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 5, 16])],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5, 8])], [numpy_helper.from_array(w, "w")])  # fmt: skip
    onnx.save(helper.make_model(graph_, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    quantize_per_row(tmp_path / "f.onnx", tmp_path / "q.onnx")
    x = rng.standard_normal((3, 5, 16)).astype(np.float32) * np.array([0.01, 1.0, 30.0], np.float32)[:, None, None]
    got = cpu_session(tmp_path / "q.onnx").run(None, {"x": x})[0]
    ws = np.abs(w).max(0) / 127
    xs = np.abs(x).max(-1, keepdims=True) / 127
    expected = (np.clip(np.round(x / xs), -128, 127) @ np.round(w / ws)) * xs * ws
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(got - x @ w).max() / np.abs(x @ w).max() < 0.02
    # each row alone gives what it gives in company
    np.testing.assert_allclose(cpu_session(tmp_path / "q.onnx").run(None, {"x": x[:1]})[0], got[:1], rtol=1e-6, atol=1e-7)


def test_manifest_refuses_chunked_streaming_it_cannot_serve(served: Path) -> None:
    data = Manifest.load(served / NAME).to_json()
    bad = {**data, "chunked_streaming": {**data["chunked_streaming"], "precisions": ["fp16"]}}
    with pytest.raises(ManifestError, match="precisions"):
        Manifest.from_json(bad)
    with pytest.raises(ManifestError, match="full-context"):
        Manifest.from_json({**data, "context": "exact"})


def test_scheduled_streams_get_what_they_get_alone(served: Path) -> None:
    """`WS /v1/stream`'s path (the StreamScheduler): chunked streams run alone on the CPU, each gets its own results."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from app.asr.recognizer import Recognizer
    from app.asr.stream_batching import StreamScheduler
    from app.asr.streaming import Stream, StreamOptions

    recognizer = Recognizer(load_bundles(served, threads=1), default_model=NAME)
    bundle = recognizer.bundle(NAME)

    def new() -> Stream:
        return Stream(recognizer, bundle, bundle.models["int8"], DecodeOptions(decoder="greedy"), StreamOptions(endpoint_silence=0.3, max_utterance=1.0))

    audios = [speechlike(s, seed=20 + i) for i, s in enumerate([2.5, 1.2, 3.0])]
    expected = []
    for audio in audios:
        stream = new()
        expected.append([r for i in range(0, len(audio), 2560) for r in stream.accept(audio[i : i + 2560])] + stream.finish())

    async def run(scheduler: StreamScheduler, stream: Stream, audio: np.ndarray) -> list:
        out = []
        for i in range(0, len(audio), 2560):
            out += await scheduler.accept(stream, audio[i : i + 2560])
            await asyncio.sleep(0)
        return out + await scheduler.finish(stream)

    async def together(scheduler: StreamScheduler) -> list:
        return await asyncio.gather(*(run(scheduler, new(), a) for a in audios))

    with ThreadPoolExecutor(2) as executor:
        scheduler = StreamScheduler(executor)
        got = asyncio.run(together(scheduler))
    assert scheduler.calls == scheduler.chunks > 0  # max_batch 1 on the CPU: no call carries two streams
    for a, b in zip(expected, got, strict=True):
        assert [(r.kind, r.text, r.start, r.end) for r in b] == [(r.kind, r.text, r.start, r.end) for r in a]


def test_capacity_is_measured_on_the_chunked_path(bundle: AcousticBundle, served: Path) -> None:
    from app.asr.capacity import measure_stream_capacity
    from app.asr.recognizer import Recognizer

    recognizer = Recognizer(load_bundles(served, threads=1), default_model=NAME)
    capacity = measure_stream_capacity(recognizer, recognizer.bundle(NAME), workers=1, batch=4)
    assert capacity.source == "measured" and capacity.streams >= 1
    assert capacity.acoustic_seconds == capacity.acoustic_seconds > 0  # a number: the chunk path ran


def test_websocket_stream_serves_the_chunked_bundle(served: Path) -> None:
    """`WS /v1/stream` on the chunked bundle: the same partials and finals as a `Stream` fed the same pieces in-process."""
    import json

    from fastapi.testclient import TestClient

    from app.asr.recognizer import Recognizer
    from app.asr.streaming import Stream, StreamOptions
    from app.config import Settings
    from app.main import create_app

    audio = speechlike(4.0, seed=9)
    config = {"model": NAME, "sample_rate": 16000, "encoding": "f32le", "decoder": "greedy", "endpoint_silence": 0.3, "max_utterance": 1.2}
    settings = Settings(models_dir=served, default_model=NAME, threads=1, workers=1, max_streams=4)
    data = audio.astype("<f4").tobytes()
    with TestClient(create_app(settings)) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(config))
        assert ws.receive_json()["type"] == "ready"
        for start in range(0, len(data), 10240):
            ws.send_bytes(data[start : start + 10240])
        ws.send_text('{"type": "eof"}')
        messages = []
        while (message := ws.receive_json())["type"] != "eof":
            messages.append(message)
    finals = [m for m in messages if m["type"] == "final"]
    assert len(finals) >= 3 and any(m["type"] == "partial" for m in messages)

    recognizer = Recognizer(load_bundles(served, threads=1), default_model=NAME)
    bundle = recognizer.bundle(NAME)
    stream = Stream(recognizer, bundle, bundle.model(), DecodeOptions(decoder="greedy"), StreamOptions(endpoint_silence=0.3, max_utterance=1.2))
    assert stream.graph is not None
    expected = [r for i in range(0, len(audio), 2560) for r in stream.accept(audio[i : i + 2560])] + stream.finish()
    assert [(m["text"], m["start"], m["end"]) for m in finals] == [
        (r.transcript.to_json()["text"], pytest.approx(r.start, abs=1e-3), pytest.approx(r.end, abs=1e-3)) for r in expected if r.kind == "final" and r.transcript
    ]
