"""Request options: one model, its bounds defined once, resolved against a bundle in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.asr.bundle import load_bundles
from app.asr.errors import InvalidOption
from app.asr.options import MAX_BEAM_SIZE, MAX_HOTWORD_CHARS, MAX_HOTWORDS, MAX_HOTWORDS_CHARS, DecodeOptions, resolve


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": MAX_BEAM_SIZE + 1}, "beam_size"),
        ({"nbest": 33}, "nbest"),
        ({"nbest": 9, "beam_size": 4}, "nbest"),
        ({"decoder": "magic"}, "decoder"),
        ({"lm_weight": "nan"}, "lm_weight"),
        ({"word_score": 1000}, "word_score"),
        ({"precision": "fp64"}, "precision"),
        ({"lm": "maybe"}, "lm"),
        ({"hotwords": "cat:notanumber"}, "hotwords"),
        ({"hotwords": ["zebra", 3]}, "hotwords"),
        ({"hotwords": ",".join(["w"] * (MAX_HOTWORDS + 1))}, "hotwords"),
        ({"hotwords": "x" * (MAX_HOTWORD_CHARS + 1)}, "hotwords"),
        ({"hotwords": "," * (MAX_HOTWORDS_CHARS + 1)}, "hotwords"),  # bounded as sent, before splitting
        ({"hotwords": ["ab"] * (MAX_HOTWORDS_CHARS // 2)}, "hotwords"),
    ],
)
def test_bounds_are_refused_with_a_message_naming_the_value(values: dict, named: str) -> None:
    with pytest.raises(InvalidOption, match=named):
        DecodeOptions.parse(values)
    with pytest.raises(InvalidOption, match=named):
        DecodeOptions(**values)


def test_strings_as_forms_send_them() -> None:
    options = DecodeOptions.parse({"beam_size": "8", "nbest": " 3 ", "lm": "TRUE", "rescore": "off", "decoder": "", "hotwords": ["a, b:2", "c"]})
    assert (options.beam_size, options.nbest, options.lm, options.rescore, options.decoder) == (8, 3, True, False, None)
    assert options.hotwords == ("a", "b:2", "c")
    assert DecodeOptions.parse({"hotwords": "a,b"}) == DecodeOptions(hotwords=("a", "b"))


def test_options_are_frozen_and_copied_with_validation() -> None:
    options = DecodeOptions(decoder="beam", beam_size=8)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        options.beam_size = 4  # type: ignore[misc]
    assert options.with_(nbest=2).nbest == 2
    with pytest.raises(InvalidOption, match="nbest"):
        options.with_(nbest=9)
    assert "memory" not in DecodeOptions.model_fields  # per-stream state lives in the stream


def test_resolve_fills_the_bundle_defaults(models_dir: Path) -> None:
    bundle = load_bundles(models_dir, threads=1).acoustic["tiny-ctc"]
    defaults = bundle.manifest.decoding
    greedy = resolve(DecodeOptions(decoder="greedy"), bundle)
    assert greedy.decoder == "greedy" and greedy.beam is None and greedy.precision == "fp32"
    beam = resolve(DecodeOptions(decoder="beam", lm_weight=1.5, hotwords=("cat",)), bundle)
    assert beam.beam is not None and beam.beam.beam_size == defaults.beam_size and beam.beam.lm_weight == 1.5
    assert beam.beam.word_score == defaults.word_score and beam.lm is True
    assert [(h.text, h.boost) for h in beam.hotwords] == [("cat", defaults.hotword_boost)]
    assert resolve(DecodeOptions(decoder="beam", rescore=True), bundle).beam.nbest == min(defaults.beam_size, 8)  # type: ignore[union-attr]
    assert resolve(DecodeOptions(vtln=True), bundle).vtln_warps and not resolve(DecodeOptions(vtln=False), bundle).vtln_warps
    with pytest.raises(InvalidOption, match="no int8 graph"):
        resolve(DecodeOptions(precision="int8"), bundle)
    with pytest.raises(InvalidOption, match="nbest"):
        resolve(DecodeOptions(decoder="beam", nbest=defaults.beam_size + 1), bundle)
