"""REST messages: the JSON `POST /v1/transcribe` and `GET /v1/models` answer with, and the audio body's OpenAPI description."""

from __future__ import annotations

from pydantic import BaseModel


class WordOut(BaseModel):
    word: str  # as recognised: lowercase letters and apostrophe
    start: float
    end: float
    confidence: float
    punctuated_word: str | None = None  # as shown (punctuate/itn); "" when a number written on the word before covers it


class NBestOut(BaseModel):
    text: str
    raw_text: str | None = None  # the normalised words of `text`
    score: float
    acoustic_score: float
    lm_score: float | None = None
    txl_score: float | None = None


class TranscriptionOut(BaseModel):
    text: str  # punctuated, cased, numbers written (options punctuate, itn)
    raw_text: str | None = None  # the normalised words: what the recognizer output and WER is computed on
    words: list[WordOut]
    nbest: list[NBestOut]
    duration: float
    model: str
    timings: dict[str, float]
    warp: float | None = None  # the VTLN frequency warp chosen for this file (absent: not normalised)


class ModelOut(BaseModel):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "asr-server"
    kind: str
    architecture: str
    criterion: str | None = None
    sample_rate: int | None = None
    precisions: list[str]
    default: bool = False


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelOut]


AUDIO_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}
