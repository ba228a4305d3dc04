"""Domain errors of the recognition core. The API edge maps each to an HTTP status and code."""

from __future__ import annotations


class ASRError(Exception):
    """Base class: `code` is a stable machine-readable name, `status` the HTTP status it maps to."""

    code = "asr_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAudio(ASRError):
    code, status = "invalid_audio", 415


class EmptyAudio(ASRError):
    code, status = "empty_audio", 400


class AudioTooLarge(ASRError):
    code, status = "audio_too_large", 413


class AudioTooLong(ASRError):
    code, status = "audio_too_long", 413


class UnknownModel(ASRError):
    code, status = "unknown_model", 404


class InvalidOption(ASRError):
    code, status = "invalid_option", 422


class Busy(ASRError):
    code, status = "too_many_requests", 429


class ShuttingDown(ASRError):
    code, status = "shutting_down", 503
