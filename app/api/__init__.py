"""Thin HTTP and WebSocket edge over `app.asr`: parse, call the recognizer, map errors."""
