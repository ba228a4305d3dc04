"""Bundle loading: a broken bundle is refused with the file and the fault; the others serve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.asr.bundle import load_bundles
from app.asr.manifest import Manifest, ManifestError


@pytest.fixture()
def broken_dir(models_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-asg", root / "good")
    for name in ("bad-sha", "bad-version", "bad-json", "missing-onnx", "bad-onnx", "outside"):
        shutil.copytree(models_dir / "tiny-asg", root / name)
        manifest = json.loads((root / name / "manifest.json").read_text())
        manifest["name"] = name
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    (root / "bad-sha" / "transitions.npy").write_bytes(b"tampered")
    data = json.loads((root / "bad-version" / "manifest.json").read_text())
    data["format_version"] = 99
    (root / "bad-version" / "manifest.json").write_text(json.dumps(data))
    (root / "bad-json" / "manifest.json").write_text("{not json")
    (root / "missing-onnx" / "model.onnx").unlink()
    data = json.loads((root / "outside" / "manifest.json").read_text())
    data["files"]["fp32"]["path"] = "../good/model.onnx"
    (root / "outside" / "manifest.json").write_text(json.dumps(data))
    onnx = root / "bad-onnx" / "model.onnx"
    onnx.write_bytes(b"not an onnx graph")
    data = json.loads((root / "bad-onnx" / "manifest.json").read_text())
    from app.asr.manifest import sha256_file

    data["files"]["fp32"]["sha256"] = sha256_file(onnx)
    (root / "bad-onnx" / "manifest.json").write_text(json.dumps(data))
    return root


def test_broken_bundles_are_refused_one_by_one(broken_dir: Path) -> None:
    bundles = load_bundles(broken_dir, threads=1)
    assert set(bundles.acoustic) == {"tiny-asg"}
    reasons = bundles.failures
    assert "sha256 mismatch" in reasons["bad-sha"] and "transitions.npy" in reasons["bad-sha"]
    assert "format_version 99" in reasons["bad-version"]
    assert "not valid JSON" in reasons["bad-json"]
    assert "missing" in reasons["missing-onnx"] and "model.onnx" in reasons["missing-onnx"]
    assert "ONNX Runtime cannot load" in reasons["bad-onnx"]
    assert "outside the bundle" in reasons["outside"]


def test_server_keeps_serving_and_reports_failures(broken_dir: Path, settings) -> None:  # type: ignore[no-untyped-def]
    from app.main import create_app
    from tests.helpers import encode, speechlike

    with TestClient(create_app(settings.model_copy(update={"models_dir": broken_dir, "default_model": None}))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert set(ready.json()["failed"]) == {"bad-sha", "bad-version", "bad-json", "missing-onnx", "bad-onnx", "outside"}
        assert client.post("/v1/transcribe", content=encode(speechlike(1.0), 16000)).status_code == 200


def test_manifest_validation_messages(models_dir: Path) -> None:
    data = json.loads((models_dir / "tiny-asg" / "manifest.json").read_text())
    for change, message in (({"criterion": "rnnt"}, "unknown criterion"), ({"kind": "vision"}, "unknown kind"),
                            ({"files": {}}, "neither an fp32 nor an int8"), ({"files": {"fp16": data["files"]["fp32"]}}, "neither an fp32 nor an int8"),
                            ({"transitions": None}, "transitions file")):
        with pytest.raises(ManifestError, match=message):
            Manifest.from_json({**data, **change})
