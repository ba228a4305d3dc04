"""Stream capacity measured at start-up, and admission against it."""

from __future__ import annotations

from pathlib import Path

from app.asr.bundle import load_bundles
from app.asr.capacity import Admission, StreamCapacity, capacity_from_setting, measure_stream_capacity
from app.asr.recognizer import Recognizer


def test_measured_capacity_is_positive_and_explained(models_dir: Path) -> None:
    recognizer = Recognizer(load_bundles(models_dir, threads=1), default_model="tiny-asg")
    capacity = measure_stream_capacity(recognizer, recognizer.bundle("tiny-asg"), workers=2, audio_seconds=1.0)
    assert capacity.source == "measured" and capacity.streams >= 1
    assert capacity.acoustic_seconds > 0 and capacity.decode_seconds >= 0
    assert "measured at start-up" in capacity.describe()


def test_admission_refuses_past_the_limit_at_once() -> None:
    admission = Admission(StreamCapacity(2, "setting"))
    assert admission.admit(0) and admission.admit(1)
    assert not admission.admit(2) and not admission.admit(5)
    assert admission.refused == 2
    assert "capacity of 2 concurrent streams" in admission.reason() and "ASR_MAX_STREAMS" in admission.reason()


def test_setting_overrides_the_measurement() -> None:
    assert capacity_from_setting(None) is None
    setting = capacity_from_setting(5)
    assert setting is not None and setting.streams == 5 and setting.source == "setting"
