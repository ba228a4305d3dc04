"""Audio manifests: JSON lines of `{"audio": path, "text": reference, ...}` (not the bundle manifest,
`app.asr.manifest`). No torch: the corpus builder, the n-gram tools, export and the benchmark read them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_manifest(path: Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of `path` (at most `limit`), each `audio` made absolute: a relative one is relative to the manifest's folder."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:limit]
    for row in rows:
        if "audio" in row and not Path(row["audio"]).is_absolute():
            row["audio"] = str(path.parent / row["audio"])
    return rows
