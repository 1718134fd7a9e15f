"""``OpenAIClient.complete``: free text through the same cache, in-flight sharing, cost cap,
limits and retries as structured calls, against the loopback server (nothing monkeypatched)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mis_data.core.records import RejectReason
from mis_data.models.base import BudgetExceeded, TextRequest
from mis_data.models.client import OpenAIClient
from tests.support.eval_client import make_client, text_request
from tests.support.loopback import LoopbackServer, Reply


def complete(client: OpenAIClient, *requests: TextRequest) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(client.complete(r) for r in requests))
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_free_text_comes_back_as_sent_with_usage(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(lambda body: "The first image shows {a brace} and a shop.") as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch,
                                   prices={"input": 1.0, "output": 2.0})
        [result] = complete(client, text_request(shas))
        assert result.ok and not result.refused
        assert result.text == "The first image shows {a brace} and a shop."
        assert (result.input_tokens, result.output_tokens) == (100, 20)
        assert result.cost_usd == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)
        body = server.state.received[0].body
        assert "response_format" not in body
        assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "image_url", "text"]


def test_a_refusal_is_an_answer_not_a_reject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = {"a": Reply(refusal="I can't help with that."), "b": "I'm sorry, but no."}
    with LoopbackServer(lambda body: replies[body["messages"][0]["content"][2]["text"]]) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        first, second = complete(client, text_request(shas, "a"), text_request(shas, "b"))
        assert (first.ok, first.refused, first.text) == (True, True, "I can't help with that.")
        assert (second.ok, second.refused, second.text) == (True, True, "I'm sorry, but no.")
        assert server.state.chat_requests == 2  # never asked again
        assert client.usage.refusals_by_sub_category == {"Cybercrime": 2}


def test_cache_and_in_flight_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(lambda body: "answer", latency=0.1) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        results = complete(client, *(text_request(shas) for _ in range(5)))
        assert all(r.text == "answer" for r in results) and server.state.chat_requests == 1
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        [again] = complete(client, text_request(shas))
        assert again.text == "answer" and again.output_tokens == 20
        assert server.state.chat_requests == 1 and client.usage.total.cached == 1


def test_transport_errors_are_retried_then_reported(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(lambda body: "fine", script=["429", "500"], retry_after=0.01) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        [result] = complete(client, text_request(shas))
        assert result.text == "fine" and server.state.chat_requests == 3
    with LoopbackServer(lambda body: Reply(status=503)) as server:
        client, shas = make_client(tmp_path / "b", server.url, monkeypatch, max_retries=1)
        [result] = complete(client, text_request(shas))
        assert not result.ok and result.text is None
        assert result.reason == RejectReason.api_error and "HTTP 503" in result.detail
    with LoopbackServer(lambda body: Reply(status=400)) as server:  # the same every time: final
        client, shas = make_client(tmp_path / "c", server.url, monkeypatch)
        [result] = complete(client, text_request(shas))
        assert result.reason == RejectReason.request_rejected and server.state.chat_requests == 1


def test_the_cost_cap_and_concurrency_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(lambda body: "ok", latency=0.05) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch, concurrency=2)
        complete(client, *(text_request(shas, f"q{i}") for i in range(8)))
        assert server.state.peak_in_flight == 2
    with LoopbackServer(lambda body: "ok") as server:
        client, shas = make_client(tmp_path / "b", server.url, monkeypatch, max_cost=1.5,
                                   max_tokens=100, prices={"input": 1000.0, "output": 1000.0})

        async def go() -> None:
            try:
                for i in range(20):
                    await client.complete(text_request(shas, f"q{i}"))
            finally:
                await client.aclose()

        with pytest.raises(BudgetExceeded):
            asyncio.run(go())
        assert 0 < client.spent() <= 1.5 and server.state.chat_requests < 20
