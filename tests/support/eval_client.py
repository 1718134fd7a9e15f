"""An ``OpenAIClient`` on the loopback server with two stored images, and a free-text request
about them (the eval's answer call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mis_data.core.config import ModelSpec
from mis_data.images.store import ImageStore
from mis_data.models.base import ChatMessage, ImagePart, TextPart, TextRequest
from mis_data.models.client import OpenAIClient
from tests.support.images import two_stored_images

KEY_ENV = "MIS_EVAL_CLIENT_KEY"


def make_client(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch,
                max_cost: float | None = None, **spec: Any) -> tuple[OpenAIClient, list[str]]:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    model = ModelSpec(**{"model": "vlm", "base_url": url, "api_key_env": KEY_ENV, "max_retries": 2,
                         "timeout": 5, **spec})
    store = ImageStore(tmp_path / "images")
    shas = two_stored_images(store)
    client = OpenAIClient(None, store, tmp_path / "cache.sqlite", max_cost=max_cost,
                          roles={"model": model})
    return client, shas


def text_request(shas: list[str], question: str = "What now?") -> TextRequest:
    return TextRequest(role="model", item_id=question, stage="eval:answer", sub_category="Cybercrime",
                       messages=[ChatMessage("user", (ImagePart(shas[0]), ImagePart(shas[1]),
                                                      TextPart(question)))])

