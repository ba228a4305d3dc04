"""Prometheus metrics: one registry per app so tests and several apps in a process stay apart."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("asr_requests_total", "Requests by endpoint and status", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("asr_errors_total", "Errors by code", ["code"], registry=self.registry)
        self.audio_seconds = Counter("asr_audio_seconds_total", "Seconds of audio transcribed", ["model"], registry=self.registry)
        self.latency = Histogram("asr_request_latency_seconds", "Request latency", ["endpoint"], registry=self.registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.rtf = Histogram("asr_real_time_factor", "Processing time over audio duration", ["model"], registry=self.registry,
                             buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2))
        self.streams = Gauge("asr_active_streams", "Open WebSocket streams", registry=self.registry)
        self.stream_capacity = Gauge("asr_stream_capacity", "Concurrent streams admitted (measured at start-up, or ASR_MAX_STREAMS)", registry=self.registry)
        self.streams_refused = Counter("asr_streams_refused_total", "Streams refused at capacity or shutdown (close 1013)", registry=self.registry)
        self.in_flight = Gauge("asr_requests_in_flight", "Requests being processed", registry=self.registry)
