"""Session-wide fixtures: tiny ASG and CTC Wav2Letter bundles exported through the real export step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.helpers import build_tiny_bundles


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundles(tmp_path_factory.mktemp("models"), tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def punctuation_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny punctuation bundle trained for a few steps through the real recipe and exporter."""
    pytest.importorskip("torch")
    from tests.punctuation_helpers import build_tiny_punctuation

    return build_tiny_punctuation(tmp_path_factory.mktemp("punctuation"))


@pytest.fixture(scope="session")
def settings(models_dir: Path) -> Settings:
    return Settings(models_dir=models_dir, default_model="tiny-asg", threads=1, workers=2)


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c
