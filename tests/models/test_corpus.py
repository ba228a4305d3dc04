"""The corpus builder must write usable 16 kHz clips and must never leak the held-out voice
or held-out sentences into training material."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from models.train.corpus import build, engines, text
from models.train.corpus.build import run_job
from models.train.corpus.engines import ClipSpec, make_synth_spec
from models.train.corpus.text import build_text_pools

SENTENCES = ("the quick brown fox jumps over the lazy dog", "it's twelve o'clock in the morning")


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"TTS binaries not installed: {', '.join(missing)}")


def _check_clip(out: Path, spec: ClipSpec, duration: float | None) -> None:
    assert duration is not None and duration > 0.3
    info = sf.info(str(out / "clips" / spec.rel_path))
    assert info.samplerate == 16000 and info.channels == 1
    assert info.format == "FLAC" and info.subtype == "PCM_16"
    assert abs(info.frames / info.samplerate - duration) < 1e-3


def test_synthesis_writes_16k_flac_and_manifest(tmp_path: Path) -> None:
    _need("espeak-ng", "flite")
    specs = [
        make_synth_spec("train", SENTENCES[0], "espeak", "en-gb-scotland+m3", speed=180, pitch=40),
        make_synth_spec("train", SENTENCES[1], "flite", "kal16", stretch=1.1),
        make_synth_spec("test_slt", SENTENCES[0], "flite", engines.HELDOUT_FLITE_VOICE),
    ]
    results = run_job((str(tmp_path), specs))
    durations = {s.rel_path: d for s, d in results}
    for spec in specs:
        _check_clip(tmp_path, spec, durations[spec.rel_path])
    # Idempotent: a second run finds the files and reports the same durations.
    assert {s.rel_path: d for s, d in run_job((str(tmp_path), specs))} == pytest.approx(durations)

    rows = build.write_manifests(specs, durations, tmp_path)
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(lines) == 2 and len(rows["test_slt"]) == 1
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"audio", "text", "speaker", "duration"}
        assert Path(row["audio"]).is_absolute() and Path(row["audio"]).exists()
        assert row["text"] in SENTENCES and row["speaker"] not in engines.HELDOUT_SPEAKERS


def test_festival_batch(tmp_path: Path) -> None:
    _need("festival")
    specs = [make_synth_spec("train", s, "festival", "kal_diphone", stretch=1.0) for s in SENTENCES]
    for spec, duration in run_job((str(tmp_path), specs)):
        _check_clip(tmp_path, spec, duration)


def test_training_voices_never_use_heldout_speaker() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    speakers = {engines.draw_training_voice("train", "a b c", rng).speaker for _ in range(3000)}
    assert not speakers & engines.HELDOUT_SPEAKERS
    engine_names = {s.split(":")[0] for s in speakers}
    assert engine_names == {"espeak", "flite", "festival"}


def test_heldout_sentences_stay_out_of_training_text(tmp_path: Path) -> None:
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    # Enough distinct sentences that ~5% are held out by hash.
    lines = [f"sentence number {i} is about the weather today" for i in range(400)]
    (text_dir / "common_voice_sentences.txt").write_text("\n".join(lines[:300]) + "\nToo short.\n")
    (text_dir / "lj_speech.txt").write_text("\n".join(lines[300:]) + "\n")
    book = "Header junk\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\n"
    book += " ".join(line.capitalize() + "." for line in lines[:50]) + " Mr. Smith came in.\n\n"
    book += "End of the Project Gutenberg EBook of X\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nLicence text\n"
    (text_dir / "gutenberg_x.txt").write_text(book)

    pools = build_text_pools(text_dir)
    assert pools.heldout and all(text.is_heldout(s) for s in pools.heldout)
    assert not set(pools.heldout) & set(pools.train)
    assert not set(pools.heldout) & set(pools.lm_train)
    assert "mr smith came in" in pools.lm_train
    assert not any("gutenberg" in s or "licence" in s or "header" in s for s in pools.lm_train)
    assert "too short" not in pools.train
    assert pools.lm_heldout == pools.heldout


def _median_f0(path: Path) -> float:
    """Median autocorrelation pitch of the voiced frames (enough to tell 100 Hz from 200 Hz)."""
    import numpy as np

    x, sr = sf.read(str(path), dtype="float32")
    f0s = []
    for start in range(0, len(x) - 1024, 512):
        frame = x[start : start + 1024]
        if np.abs(frame).mean() < 0.015:
            continue
        ac = np.correlate(frame, frame, "full")[1023:]
        lo, hi = sr // 400, sr // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            f0s.append(sr / lag)
    return float(np.median(f0s))


@pytest.mark.parametrize("engine,voice", [("flite", "kal16"), ("festival", "ked_diphone")])
def test_raised_pitch_voices_really_speak_higher(tmp_path: Path, engine: str, voice: str) -> None:
    _need(engine)
    plain = make_synth_spec("train", SENTENCES[0], engine, voice)
    high = make_synth_spec("train", SENTENCES[0], engine, voice, pitch=210)
    durations = {s.rel_path: d for s, d in run_job((str(tmp_path), [plain, high, plain]))}
    for spec in (plain, high):
        _check_clip(tmp_path, spec, durations[spec.rel_path])
    low_f0 = _median_f0(tmp_path / "clips" / plain.rel_path)
    high_f0 = _median_f0(tmp_path / "clips" / high.rel_path)
    assert low_f0 < 140 and 170 < high_f0 < 260, (low_f0, high_f0)


def test_high_pitch_clips_leave_the_rest_of_the_plan_unchanged(tmp_path: Path) -> None:
    import numpy as np

    pools = text.TextPools(
        train=[f"training sentence {i}" for i in range(50)], heldout=[f"heldout sentence {i}" for i in range(700)],
        lm_train=[], lm_heldout=[],
    )  # fmt: skip
    for name in ("an4_train", "fsdd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.jsonl").write_text("")
    base = build.plan_corpus(pools, 30, seed=3, data_dir=tmp_path)
    more = build.plan_corpus(pools, 30, seed=3, data_dir=tmp_path, high_pitch=20)
    extra = [s for s in more.specs if s not in base.specs]
    assert [s for s in more.specs if s in base.specs] == base.specs and len(extra) == 20
    assert all(s.split == "train" and s.speaker not in engines.HELDOUT_SPEAKERS for s in extra)
    low, high = engines.HIGH_PITCH_F0
    assert all(low <= s.pitch <= high and (s.engine, s.voice) in engines.HIGH_PITCH_VOICES for s in extra)
    assert len({s.rel_path for s in extra}) == 20 and np.mean([s.engine == "flite" for s in extra]) > 0.2
