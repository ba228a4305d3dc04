"""Torch-free recognition core: audio input, bundles, ONNX Runtime, decoders, recognizer.

Modules here import neither FastAPI nor torch. `text`, `tokens` and `manifest` are also
imported by `models/` and `export/`: they are the one place for the token table, the text
normalisation and the bundle schema, shared by training, export and serving.
"""
