"""docker/healthcheck.py: reads API keys and the address exactly as the server does."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from app.config import Settings
from tests.deploy.tools import HEALTHCHECK


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("asr_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load_healthcheck()


@pytest.mark.parametrize("keys", ["", "alpha", " alpha , beta ", '["alpha", "beta"]', ",,gamma"])
@pytest.mark.parametrize("file_lines", [None, [], ["# comment", "", "  file-key  ", "second"]])
def test_first_key_is_the_first_key_the_server_accepts(tmp_path: Path, keys: str, file_lines: list[str] | None) -> None:
    env = {"ASR_API_KEYS": keys}
    if file_lines is not None:
        path = tmp_path / "keys"
        path.write_text("\n".join(file_lines) + "\n")
        env["ASR_API_KEYS_FILE"] = str(path)
    settings = Settings.model_validate({"api_keys": keys, "api_keys_file": env.get("ASR_API_KEYS_FILE")})
    expected = settings.all_api_keys()
    assert healthcheck.first_api_key(env) == (expected[0] if expected else None)


@pytest.mark.parametrize(("env", "url"), [
    ({}, "http://127.0.0.1:8000/readyz"),
    ({"ASR_HOST": "0.0.0.0", "ASR_PORT": "9000"}, "http://127.0.0.1:9000/readyz"),
    ({"ASR_HOST": "::"}, "http://127.0.0.1:8000/readyz"),
    ({"ASR_HOST": "127.0.0.2"}, "http://127.0.0.2:8000/readyz"),
    ({"ASR_HOST": "::1", "ASR_PORT": "81"}, "http://[::1]:81/readyz"),
])
def test_readiness_url(env: dict[str, str], url: str) -> None:
    assert healthcheck.readiness_url(env) == url


def test_unreachable_server_is_unhealthy() -> None:
    ok, detail = healthcheck.check("http://127.0.0.1:9/readyz", token=None, timeout=1.0)
    assert not ok and "unreachable" in detail
