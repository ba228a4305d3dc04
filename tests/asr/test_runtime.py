"""Execution provider selection: CUDA when onnxruntime-gpu sees a GPU, else the CPU with a log line."""

from __future__ import annotations

import logging

import pytest

from app.asr import runtime


def test_cuda_chosen_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.select_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert runtime.select_providers("cuda")[0] == "CUDAExecutionProvider"
    assert runtime.select_providers("cpu") == ["CPUExecutionProvider"]


def test_falls_back_to_cpu_with_a_log_line(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.select_providers("auto") == ["CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        assert runtime.select_providers("cuda") == ["CPUExecutionProvider"]
    assert "running on the CPU" in caplog.text
