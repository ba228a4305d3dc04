"""The server runs on ONNX Runtime alone: `app` never imports torch, `models` or `export`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_server_loads_no_torch() -> None:
    code = "import sys, app.main, app.cli, app.asr.recognizer, app.asr.streaming; print(sorted(m for m in ('torch', 'torchaudio', 'transformers', 'models', 'export') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_app_source_imports_nothing_from_torch_models_or_export() -> None:
    forbidden = {"torch", "torchaudio", "transformers", "models", "export"}
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []


def test_export_depends_on_models_not_the_other_way() -> None:
    for path in (ROOT / "models").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] != "export", path
