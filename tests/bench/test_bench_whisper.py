"""asr-bench section 8: a tiny random Whisper-CTC bundle timed against the real Whisper tiny.en.

The faster-whisper side runs the installed tiny.en weights (the `eval` extra: a reference, nothing
downloaded); the figures mean nothing here, only the shape of the result and its arithmetic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from bench.inputs import speechlike, wav_bytes, whisper_ctc_bundle  # noqa: E402
from bench.whisper import load_clips, measure_whisper, reference_missing  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """`WhisperCTC(WhisperCTCConfig(d_model=64, n_heads=2, n_layers=1))`, random, through `write_bundle`."""
    cache = tmp_path_factory.mktemp("whisper-bench")
    return whisper_ctc_bundle(cache / "no-bundles", cache, tiny=True)


def test_against_tiny_en(bundle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = reference_missing()
    if missing is not None:
        pytest.skip(missing)
    manifest = tmp_path / "clips.jsonl"
    rows = []
    for i, text in enumerate(("the cat sat", "a dog ran")):
        (tmp_path / f"{i}.wav").write_bytes(wav_bytes(speechlike(1.0, seed=i), 16000))
        rows.append(json.dumps({"audio": f"{i}.wav", "text": text}))
    manifest.write_text("\n".join(rows) + "\n")
    clips = load_clips(manifest, 2, fallback_seconds=1.0)
    assert clips.references == ["the cat sat", "a dog ran"] and clips.seconds == pytest.approx(2.0)

    result = measure_whisper(bundle, clips, rounds=2)
    assert {"bundle", "trained", "note", "audio", "audio_seconds", "rounds", "reference", "engines", "speedup"} <= set(
        result
    )
    assert result["trained"] is False and result["audio_seconds"] == pytest.approx(2.0)
    assert set(result["engines"]) == {"emissions", "greedy", "whisper"}  # no LM in the bundle: no beam row
    assert result["reference"] | {"engine": None} == {"model": "whisper tiny.en", "engine": None, "compute_type": "int8", "beam_size": 5,
                                                      "language": "en", "cpu_threads": 1}  # fmt: skip
    for row in result["engines"].values():
        assert row["rtf"] > 0 and len(row["rounds"]) == 2
        assert row["rtf"] == pytest.approx(row["seconds"] / result["audio_seconds"])
    whisper_rtf = result["engines"]["whisper"]["rtf"]
    for name in ("emissions", "greedy"):
        assert result["speedup"][name] == pytest.approx(whisper_rtf / result["engines"][name]["rtf"])
    assert result["engines"]["greedy"]["wer"] >= 0 and result["engines"]["whisper"]["wer"] >= 0


def test_speechlike_without_clips(tmp_path: Path) -> None:
    clips = load_clips(tmp_path / "missing.jsonl", 2, fallback_seconds=0.5)
    assert len(clips.samples) == 2 and clips.references is None and clips.seconds == pytest.approx(1.0)


def test_skipped_without_faster_whisper(bundle, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # `import faster_whisper` now raises ImportError
    result = measure_whisper(bundle, load_clips(None, 1, fallback_seconds=0.5), rounds=1)
    assert set(result) == {"skipped"} and "faster-whisper" in result["skipped"]
