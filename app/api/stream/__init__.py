"""`WS /v1/stream`: router (endpoint and protocol description), protocol (messages), connection (the session)."""
