"""REST: `POST /v1/transcribe`, `GET /v1/models`, health, readiness and metrics (router and protocol)."""
