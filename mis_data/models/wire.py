"""Requests as an OpenAI-compatible server reads them, and as the response cache keys them.

Images are named by sha256 in a ``ChatMessage`` and become base64 data URLs only here, at send
time (shrunk to the model's ``max_image_side``), so no run file ever holds image bytes twice.
The cache key names images by hash, so a question is the same question on every server.
"""

from __future__ import annotations

import base64
import io
import json
from functools import lru_cache
from typing import Any

import openai
from PIL import Image
from pydantic import BaseModel

from mis_data.core.config import ModelSpec
from mis_data.images.store import ImageStore
from mis_data.models.base import ChatMessage, ImagePart
from mis_data.models.cache import cache_key
from mis_data.models.limits import image_tokens

# Structured-output modes, most precise first; a server that rejects one is asked the next.
MODES = ("json_schema", "json_object", "text")


def image_part(store: ImageStore, sha256: str, spec: ModelSpec) -> tuple[dict[str, Any], int]:
    """One image as a data-URL content part, and its input tokens by OpenAI's tile rule."""
    data = store.read(sha256)
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if max(width, height) > spec.max_image_side:
            image.thumbnail((spec.max_image_side, spec.max_image_side))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data, (width, height) = buffer.getvalue(), image.size
    url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return ({"type": "image_url", "image_url": {"url": url, "detail": spec.detail}},
            image_tokens(width, height, spec.detail))


def wire_messages(store: ImageStore, messages: list[ChatMessage], spec: ModelSpec
                  ) -> tuple[list[dict[str, Any]], int]:
    """Messages as the API wants them, and an input-token estimate."""
    wire, tokens = [], 0
    for message in messages:
        parts = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                url, cost = image_part(store, part.sha256, spec)
                parts.append(url)
                tokens += cost
            else:
                parts.append({"type": "text", "text": part.text})
                tokens += len(part.text) // 4 + 1
        only_text = all(p["type"] == "text" for p in parts)
        wire.append({"role": message.role,
                     "content": parts[0]["text"] if only_text and len(parts) == 1 else parts})
    return wire, tokens


def request_key(spec: ModelSpec, messages: list[ChatMessage], **extra: Any) -> str:
    """The cache key of a chat request: the model, the messages (images by hash) and the
    sampling settings; not the server, since the same model answers the same question."""
    keyed = [{"role": m.role, "parts": [{"image": p.sha256} if isinstance(p, ImagePart)
                                        else {"text": p.text} for p in m.parts]}
             for m in messages]
    return cache_key({"model": spec.model, "messages": keyed, **extra,
                      "temperature": spec.temperature, "seed": spec.seed,
                      "max_tokens": spec.max_tokens})


@lru_cache(maxsize=256)
def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict JSON schema of a reply model, built once per model (pydantic's schema
    generation costs more than the rest of a request's preparation). Callers must not mutate it.

    It is the schema the SDK itself makes strict for tools (``openai.pydantic_function_tool``), the
    public route to what ``response_format`` with a pydantic model sends.
    """
    return openai.pydantic_function_tool(model)["function"]["parameters"]


def response_format(mode: str, model: type[BaseModel]) -> Any:
    """The ``response_format`` argument for a structured-output mode."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {
            "name": model.__name__, "strict": True, "schema": strict_schema(model)}}
    if mode == "json_object":
        return {"type": "json_object"}
    return openai.NOT_GIVEN


def with_schema_prompt(wire: list[dict[str, Any]], mode: str, schema: dict[str, Any]
                       ) -> list[dict[str, Any]]:
    """A server without strict schemas is told the schema in a system message instead."""
    if mode == "json_schema":
        return wire
    return [{"role": "system", "content": "Answer with one JSON object that follows this JSON "
                                          f"schema:\n{json.dumps(schema)}"}, *wire]
