"""Opt-in: build the runtime image with podman/buildah and smoke-test it (deploy/smoke-test.sh).

Costs one to a few minutes (more the first time: a debootstrap base image and the wheels), so it runs
only with ASR_TEST_IMAGE=1, as root, with podman, buildah and curl installed (and debootstrap when
the local base image localhost/debian:bookworm does not exist yet and BASE is not set).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.deploy.tools import ROOT

SMOKE_TIMEOUT = 1800


def missing_tools() -> list[str]:
    tools = ["podman", "buildah", "curl"]
    base_given = bool(os.environ.get("BASE"))
    if not base_given and shutil.which("podman"):
        exists = subprocess.run(["podman", "image", "exists", "localhost/debian:bookworm"], capture_output=True, timeout=60).returncode == 0
        if not exists:
            tools.append("debootstrap")
    return [t for t in tools if shutil.which(t) is None]


@pytest.mark.skipif(os.environ.get("ASR_TEST_IMAGE") != "1", reason="image build and smoke test take minutes: set ASR_TEST_IMAGE=1")
def test_image_builds_and_serves() -> None:
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        pytest.skip("podman build --isolation chroot and buildah run need root here")
    if missing := missing_tools():
        pytest.skip(f"missing {', '.join(missing)} (apt-get install podman buildah debootstrap curl)")
    result = subprocess.run(["bash", str(ROOT / "deploy" / "smoke-test.sh")], cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT,
                            env={**os.environ, "IMAGE": os.environ.get("IMAGE", "localhost/asr-server:pytest"), "PYTHON": sys.executable})
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "SMOKE TEST PASSED" in result.stdout, output[-6000:]
