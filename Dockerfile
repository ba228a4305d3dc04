# syntax=docker/dockerfile:1
#
# asr-server images. Targets (the last one, `runtime`, is the default):
#
#   runtime  slim CPU server: Debian's Python 3.11, ONNX Runtime, the web stack and the bundled
#            models; no torch, no compilers; non-root; tini as PID 1; HEALTHCHECK on /readyz
#   gpu      the same server on an NVIDIA CUDA runtime base with onnxruntime-gpu
#   export   torch + torchaudio + the export extra: runs `asr-export` on a mounted checkpoint
#
# Knobs:
#   --build-arg BASE=IMAGE          Debian bookworm base of `runtime` and `export`
#                                   (default debian:bookworm-slim; any bookworm rootfs works)
#   --secret id=ca,src=CA_BUNDLE    optional CA bundle that pip trusts (a TLS-intercepting proxy);
#                                   used only while building, never stored in a layer
#   --build-arg CUDA_BASE=IMAGE     base of the `gpu` target only
#   --build-arg TORCH_INDEX=URL     extra pip index for torch in `export` (default: CPU-only wheels;
#                                   set it empty to take torch from PyPI alone)
#
#   docker build -t asr-server .
#   docker build --target gpu -t asr-server:gpu .
#   docker build --target export -t asr-server:export .
#   podman build --format docker --isolation chroot --network host \
#       --build-arg BASE=localhost/debian:bookworm \
#       --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t asr-server .
#
# See docs/deployment.md.

ARG BASE=debian:bookworm-slim
ARG CUDA_BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------
# builder: a virtual environment with the runtime dependencies and the project (no torch).
FROM ${BASE} AS builder
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first (from pyproject.toml alone), so that a source change does not refetch them.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/venv/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY app ./app
COPY models ./models
COPY export ./export
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && mkdir -p /opt/asr/models \
 && if [ -d models/bundles ]; then cp -a models/bundles/. /opt/asr/models/; fi \
 && find /opt/asr/models -name '.git*' -delete

# ---------------------------------------------------------------------------------------------
# export: checkpoints -> bundles. `docker run -v $PWD/runs:/checkpoints:ro -v $PWD/models/bundles:/bundles
#   asr-server:export wav2letter /checkpoints/w2l/best.pt -o /bundles/wav2letter-asg --int8`
FROM ${BASE} AS export
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG DEBIAN_FRONTEND=noninteractive
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH HOME=/tmp HF_HOME=/tmp/hf
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY export ./export
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} ".[export]" \
 && rm -rf /src
# /models owned by the user: a fresh named volume mounted there (compose) takes that ownership.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin asr \
 && mkdir -p /models /work && chown 10001:10001 /models /work
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["asr-export"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------
# gpu: the server on CUDA + cuDNN with onnxruntime-gpu (ASR_DEVICE=auto picks CUDA when a GPU is
# visible and falls back to the CPU with a log line). Ubuntu 24.04's Python is 3.12.
FROM ${CUDA_BASE} AS gpu
ARG DEBIAN_FRONTEND=noninteractive
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY models ./models
COPY export ./export
# onnxruntime and onnxruntime-gpu install the same `onnxruntime` package: take only the GPU one.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/python -c "import re, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(re.sub(r'^onnxruntime(?=[<>=!~ ;]|$)', 'onnxruntime-gpu', d) for d in deps))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && mkdir -p /opt/asr/models \
 && if [ -d models/bundles ]; then cp -a models/bundles/. /opt/asr/models/; fi \
 && rm -rf /src /tmp/requirements.txt
COPY docker/healthcheck.py /opt/asr/healthcheck.py
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin asr \
 && mkdir -p /models && chown 10001:10001 /models
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    ASR_HOST=0.0.0.0 ASR_PORT=8000 ASR_MODELS_DIR=/opt/asr/models ASR_DEVICE=auto
WORKDIR /opt/asr
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["/opt/venv/bin/python", "/opt/asr/healthcheck.py"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["asr-server"]

# ---------------------------------------------------------------------------------------------
# runtime (default): the slim CPU server.
FROM ${BASE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# python3 is the interpreter the builder's venv was made with (same base, same /usr/bin/python3.11).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin asr \
 && mkdir -p /models && chown 10001:10001 /models
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/asr/models /opt/asr/models
COPY docker/healthcheck.py /opt/asr/healthcheck.py
# Settings are ASR_* variables (app/config.py). ASR_HOST (not a --host flag) binds all interfaces,
# so that it stays overridable; mount bundles elsewhere and point ASR_MODELS_DIR at them.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    ASR_HOST=0.0.0.0 ASR_PORT=8000 ASR_MODELS_DIR=/opt/asr/models ASR_DEVICE=cpu
WORKDIR /opt/asr
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["/opt/venv/bin/python", "/opt/asr/healthcheck.py"]
# tini (PID 1; -s: also a subreaper when something else is PID 1) forwards SIGTERM to uvicorn, which
# drains requests and streams (up to 30 s) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["asr-server"]
