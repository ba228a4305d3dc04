"""`WS /v1/realtime`: router (endpoint and protocol description), protocol (events), connection (the session)."""
