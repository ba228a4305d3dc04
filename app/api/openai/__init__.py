"""OpenAI-compatible REST: `POST /v1/audio/transcriptions` (router and protocol)."""
