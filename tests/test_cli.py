"""`asr-transcribe` and `asr-eval`: the offline path, same code as the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import cli
from tests.helpers import encode, speechlike


def test_transcribe_formats(models_dir: Path, tmp_path: Path, client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(encode(speechlike(2.0, seed=7), 16000))
    served = client.post("/v1/transcribe", content=wav.read_bytes()).json()
    for fmt in ("text", "json", "srt", "vtt"):
        with pytest.raises(SystemExit) as done:
            cli.transcribe([str(wav), "--models-dir", str(models_dir), "--model", "tiny-asg", "--format", fmt])
        assert done.value.code == 0
        out = capsys.readouterr().out
        if fmt == "text":
            assert out.strip() == served["text"]
        elif fmt == "json":
            assert json.loads(out)["text"] == served["text"]
        elif fmt == "vtt":
            assert out.startswith("WEBVTT")
        else:
            assert "-->" in out or served["text"] == ""


def test_transcribe_reports_bad_files(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(SystemExit) as done:
        cli.transcribe([str(bad), "--models-dir", str(models_dir)])
    assert done.value.code == 1 and "bad.wav: error" in capsys.readouterr().err


def test_eval_computes_wer(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for i in range(3):
        path = tmp_path / f"{i}.wav"
        path.write_bytes(encode(speechlike(1.0, seed=i), 16000))
        rows.append({"audio": str(path), "text": "hello world"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    cli.evaluate([str(manifest), "--models-dir", str(models_dir), "--model", "tiny-ctc", "--json", "--show", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert result["utterances"] == 3 and result["model"] == "tiny-ctc" and result["wer"] >= 0
    assert out[0].startswith("REF: hello world")


def test_eval_stream_matches_offline_for_exact_models(models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--stream` runs the streaming engine; for an exact-context bundle with endpointing out of
    the way (files shorter than an utterance, no silence run) it scores what the offline path scores."""
    rows = []
    for i in range(3):
        path = tmp_path / f"{i}.wav"
        path.write_bytes(encode(speechlike(1.5, seed=10 + i), 16000))
        rows.append({"audio": str(path), "text": "hello world"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    common = [str(manifest), "--models-dir", str(models_dir), "--model", "tiny-asg", "--json", "--show", "3"]
    cli.evaluate(common)
    offline = capsys.readouterr().out.strip().splitlines()
    cli.evaluate([*common, "--stream", "37"])
    streamed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(streamed[-1])["stream_ms"] == 37
    assert [line for line in streamed if line.startswith("HYP")] == [line for line in offline if line.startswith("HYP")]
