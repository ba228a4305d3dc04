"""schemathesis against the server's own OpenAPI schema: no request it can build gets a 5xx.

Positive and negative cases (wrong types, out-of-range values, bodies that break the schema)
for every operation go through the ASGI app in process; schemathesis runs the app's lifespan
itself, so the tiny bundles are loaded. (Written with `as_strategy` rather than
`schemathesis.pytest.from_fixture`, whose lazy loader reads `request.node._nodeid`, which
pytest 9 no longer has.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install schemathesis)")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.reliability.fuzzing import PROFILE  # noqa: E402

EXAMPLES = 300 if PROFILE == "long" else 25
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
# The operations, read from a schema built without loading any model (the lifespan does not run here).
PATHS = create_app(Settings(models_dir=Path("/nonexistent"))).openapi()["paths"]
OPERATIONS = sorted((method.upper(), path) for path, item in PATHS.items() for method in item)
# Negative cases exist only where there is an input to break.
CASES = [(method, path, mode) for method, path in OPERATIONS for mode in MODES
         if mode == schemathesis.GenerationMode.POSITIVE or PATHS[path][method.lower()].get("parameters") or PATHS[path][method.lower()].get("requestBody")]


@pytest.fixture(scope="module")
def api_schema(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"max_audio_seconds": 60.0}))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_schema_lists_every_route(api_schema) -> None:  # type: ignore[no-untyped-def]
    assert {("POST", "/v1/transcribe"), ("POST", "/v1/audio/transcriptions"), ("GET", "/readyz"), ("GET", "/v1/models")} <= set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m}-{p}-{g.value}" for m, p, g in CASES])
def test_no_server_errors(api_schema, method: str, path: str, mode) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][method]

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=PROFILE != "long", database=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call()
        assert response.status_code < 500, f"{case.method} {case.path} {case.query} -> {response.status_code}: {response.text[:500]}"
        if response.status_code >= 400 and path != "/metrics":
            error = response.json()["error"]
            assert set(error) == {"code", "message"}, response.text

    run()
