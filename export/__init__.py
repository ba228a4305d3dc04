"""Turns checkpoints into verified ONNX model bundles (see `app.asr.manifest`)."""

EXPORTER_VERSION = "0.1.0"
