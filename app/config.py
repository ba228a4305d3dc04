"""Server settings: one `Settings` object from `ASR_*` environment variables and CLI flags, validated once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models" / "bundles"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask and, in a container, the cgroup quota)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(count, 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", extra="ignore")

    models_dir: Path = BUNDLED_MODELS
    default_model: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads per session; 0 = all cores")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precisions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["fp32", "int8"])
    workers: int = Field(0, ge=0, description="inference threads; 0 = one per core")
    # Limits
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0)
    max_audio_seconds: float = Field(3600.0, gt=0)
    max_concurrent_requests: int = Field(32, gt=0)
    max_streams: int | None = Field(None, gt=0, description="concurrent WebSocket streams; unset = the capacity measured at start-up (app.asr.capacity)")
    stream_idle_seconds: float = Field(30.0, gt=0)
    ws_max_message_bytes: int = Field(1 << 20, gt=0)
    stream_max_lag_seconds: float = Field(10.0, gt=0, description="a stream whose processing falls this far behind real time is closed with 1013")
    # Connections (enforced by `app.server.LimitedHttpProtocol`)
    max_connections: int = Field(1000, gt=0, description="open connections (HTTP and WebSocket); past it new ones get 503 at once")
    header_timeout_seconds: float = Field(10.0, gt=0, description="a request's line and headers must arrive within this")
    idle_timeout_seconds: float = Field(30.0, gt=0, description="longest pause in a request body being sent")
    keep_alive_seconds: float = Field(5.0, gt=0, description="an idle keep-alive connection is closed after this")
    drain_delay_seconds: float = Field(5.0, ge=0, description="on SIGTERM: keep listening this long with /readyz at 503, then drain")
    # Batching
    batch_max_size: int = Field(16, ge=1)
    batch_max_wait_ms: float = Field(5.0, ge=0)
    # Security
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="bearer tokens; empty = no authentication")
    api_keys_file: Path | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_docs: bool = Field(False, description="serve /docs, /redoc and /openapi.json without a key even when API keys are set")

    @field_validator("api_keys", "cors_origins", "precisions", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    def resolved_threads(self) -> int:
        return self.threads or available_cpus()

    def resolved_workers(self) -> int:
        return self.workers or available_cpus()

    def all_api_keys(self) -> list[str]:
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            keys += [line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
        return keys
