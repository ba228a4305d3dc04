"""Speech recognition inference server: FastAPI edge (`app.api`) over a torch-free core (`app.asr`)."""

__version__ = "0.1.0"
