"""The request options of every route: `RequestOptions` (the model name plus `DecodeOptions`) and
the dependencies that build it from query parameters and form fields.

The bounds live on `app.asr.options.DecodeOptions`, once; HTTP (query and form), the
`WS /v1/stream` config and the Realtime session all validate through it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import Field

from app.api.deps import UploadDep
from app.asr.options import DecodeOptions

MAX_MODEL_NAME = 200


class RequestOptions(DecodeOptions):
    """`DecodeOptions` and the bundle they apply to."""

    model: str | None = Field(None, max_length=MAX_MODEL_NAME, description="bundle name; empty or 'default' for the default model")

    @classmethod
    def from_fields(cls, fields: dict[str, list[str]], base: dict[str, Any] | None = None) -> RequestOptions:
        """Options from form fields (the last value of a repeated field; every `hotwords` field),
        over `base` (values already given, e.g. by the query string)."""
        values = dict(base or {})
        for name in cls.model_fields:
            if fields.get(name):
                values[name] = fields[name] if name == "hotwords" else fields[name][-1]
        return cls.parse(values)

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions.parse(self.model_dump(exclude={"model"}, exclude_unset=True))


def transcribe_options(query: Annotated[RequestOptions, Query()], upload: UploadDep) -> RequestOptions:
    """`POST /v1/transcribe`: query parameters, overridden by form fields of the same name."""
    if not upload.fields:
        return query
    return RequestOptions.from_fields(upload.fields, query.model_dump(exclude_unset=True))


def form_options(upload: UploadDep) -> RequestOptions:
    """Form fields alone (`POST /v1/audio/transcriptions`)."""
    return RequestOptions.from_fields(upload.fields)


TranscribeOptionsDep = Annotated[RequestOptions, Depends(transcribe_options)]
FormOptionsDep = Annotated[RequestOptions, Depends(form_options)]


OPENAI_MODEL_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")  # OpenAI's transcription models: the default model


def bundle_name(model: str | None) -> str | None:
    """The bundle an OpenAI-style request names: OpenAI's own model names mean the default model
    (`POST /v1/audio/transcriptions` and the Realtime session alike); any other name must be a bundle."""
    return None if model is None or model in OPENAI_MODEL_ALIASES else model
