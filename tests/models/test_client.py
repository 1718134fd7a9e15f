"""The OpenAI-compatible client, through the real ``openai`` SDK against a loopback server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from mis_data.core.config import BuildConfig
from mis_data.core.records import RejectReason
from mis_data.images.store import ImageStore
from mis_data.models.base import (
    BudgetExceeded,
    ChatMessage,
    ImagePart,
    Problem,
    StructuredRequest,
    TextPart,
    extract_json,
)
from mis_data.models.client import OpenAIClient
from mis_data.models.limits import parse_duration, retry_delay
from tests.support.images import two_stored_images
from tests.support.loopback import LoopbackServer, Reply

KEY = "sk-test-SECRET-123"


class Answer(BaseModel):
    answer: str


def answer_with(text: str) -> Any:
    return lambda body: {"answer": text}


def make_client(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, max_cost: float | None = None,
                rate_window: float = 60.0, **spec: Any) -> tuple[OpenAIClient, list[str]]:
    monkeypatch.setenv("MIS_TEST_KEY", KEY)
    model = {"model": "vlm", "base_url": url, "api_key_env": "MIS_TEST_KEY", "max_retries": 3,
             "timeout": 5, **spec}
    config = BuildConfig.model_validate({
        "backend": "openai", "concepts": {"sources": [{"kind": "shipped", "path": "x"}]},
        "models": {"text": model, "vision": model, "judges": [model], "image": model}})
    store = ImageStore(tmp_path / "images")
    shas = two_stored_images(store)
    client = OpenAIClient(config, store, tmp_path / "cache.sqlite", max_cost=max_cost,
                          rate_window=rate_window)
    return client, shas


def request(shas: list[str], item: str = "a", check: Any = None) -> StructuredRequest:
    return StructuredRequest(
        task="label", role="vision", item_id=item, stage="labels", response_model=Answer,
        messages=[ChatMessage("user", (ImagePart(shas[0]), ImagePart(shas[1]),
                                       TextPart(f"Describe both images ({item}).")))],
        check=check, sub_category="Property Crimes")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def ask(client: OpenAIClient, *requests: StructuredRequest) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(client.structured(r) for r in requests))
        finally:
            await client.aclose()
    return run(go())


def test_two_images_arrive_as_data_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok")) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        [result] = ask(client, request(shas))
        assert result.ok and result.value.answer == "ok"
        body = server.state.received[0].body
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize(("rejected", "mode"), [({"json_schema"}, "json_object"),
                                                ({"json_schema", "json_object"}, "text")])
def test_structured_output_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     rejected: set[str], mode: str) -> None:
    with LoopbackServer(answer_with("ok"), reject_modes=rejected) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        results = ask(client, request(shas, "a"))
        results += ask(*[make_client(tmp_path / "2", server.url, monkeypatch)[0]], request(shas, "b"))
        assert all(r.ok for r in results)
        last = server.state.received[-1].body
        assert (last.get("response_format") or {}).get("type", "text") == mode
        assert "JSON schema" in last["messages"][0]["content"]


def test_json_is_found_in_fences_and_prose() -> None:
    assert extract_json('Sure!\n```json\n{"answer": "x"}\n```') == {"answer": "x"}
    assert extract_json('Here it is: {"answer": "y"} hope it helps') == {"answer": "y"}
    with pytest.raises(ValueError):
        extract_json("no object here")


def test_validation_error_is_fed_back_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def check(value: BaseModel) -> Problem | None:
        return None if value.answer == "good" else Problem(RejectReason.label_format, "say good")

    answers = iter(["bad", "good"])
    with LoopbackServer(lambda body: {"answer": next(answers)}) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        [result] = ask(client, request(shas, check=check))
        assert result.ok and result.attempts == 2 and server.state.chat_requests == 2
        assert "say good" in str(server.state.received[1].body["messages"][-1]["content"])


def test_refusals_and_declines_are_rejects_without_retry(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok"), script=["refusal", "decline"]) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        results = ask(client, request(shas, "a"), request(shas, "b"))
        assert [r.reason for r in results] == [RejectReason.refused, RejectReason.refused]
        assert server.state.chat_requests == 2
        assert client.usage.refusals_by_sub_category == {"Property Crimes": 2}


def test_retry_after_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok"), script=["429"], retry_after=0.4) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        [result] = ask(client, request(shas))
        first, second = server.state.received
        assert result.ok and second.at - first.at >= 0.4


def test_5xx_and_malformed_are_retried_then_rejected_others_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok"), script=["500", "malformed", "malformed"]) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch, max_retries=1)

        async def go() -> list[Any]:
            first = await client.structured(request(shas, "a"))  # 500, retry, malformed twice
            rest = await asyncio.gather(client.structured(request(shas, "b")),
                                        client.structured(request(shas, "c")))
            await client.aclose()
            return [first, *rest]

        results = run(go())
        assert [r.ok for r in results] == [False, True, True]
        assert results[0].reason == RejectReason.invalid_output and results[0].attempts == 2
        assert server.state.chat_requests == 5
    with LoopbackServer(answer_with("ok"), script=["500"] * 3) as server:
        client, shas = make_client(tmp_path / "b", server.url, monkeypatch, max_retries=2)
        [result] = ask(client, request(shas))
        assert result.reason == RejectReason.api_error and "HTTP 500" in result.detail


def test_concurrency_limit_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok"), latency=0.05) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch, concurrency=3)
        results = ask(client, *(request(shas, str(i)) for i in range(20)))
        assert all(r.ok for r in results) and server.state.peak_in_flight == 3


def test_rpm_and_tpm_limits_hold_over_a_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok")) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch, rpm=5, rate_window=0.5)
        start = time.monotonic()
        ask(client, *(request(shas, str(i)) for i in range(12)))
        times = sorted(r.at for r in server.state.received)
        assert all(b - a >= 0.45 for a, b in zip(times, times[5:], strict=False))
        assert time.monotonic() - start >= 0.9
    with LoopbackServer(answer_with("ok")) as server:
        client, shas = make_client(tmp_path / "t", server.url, monkeypatch, tpm=2200, max_tokens=1000,
                                   rate_window=0.5)
        ask(client, *(request(shas, str(i)) for i in range(4)))
        times = sorted(r.at for r in server.state.received)
        assert all(b - a >= 0.45 for a, b in zip(times, times[2:], strict=False))


def test_a_second_identical_run_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok")) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        ask(client, *(request(shas, str(i)) for i in range(5)))
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        results = ask(client, *(request(shas, str(i)) for i in range(5)))
        assert all(r.ok for r in results) and server.state.chat_requests == 5
        assert client.usage.total.cached == 5


def test_max_cost_stops_before_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = {"input": 1000.0, "output": 1000.0}  # $0.001 per token: 120 tokens a reply = $0.12
    with LoopbackServer(answer_with("ok")) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch, max_cost=1.5, max_tokens=100,
                                   prices=prices, concurrency=1)

        async def go() -> None:
            try:
                for i in range(20):
                    await client.structured(request(shas, str(i)))
            finally:
                await client.aclose()

        with pytest.raises(BudgetExceeded, match="higher --max-cost"):
            run(go())
        assert 0 < client.spent() <= 1.5 and 2 <= server.state.chat_requests < 20


def test_durations_and_delays() -> None:
    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == 0.02
    assert parse_duration("1.5") == 1.5 and parse_duration("soon") is None
    assert retry_delay(1, {"retry-after-ms": "250"}) == 0.25
    assert retry_delay(1, {"x-ratelimit-reset-requests": "2s"}) == 2.0
    assert 0 < retry_delay(3, {}) <= 2.0


def test_a_batch_completes_with_results_out_of_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(lambda body: {"answer": body["messages"][0]["content"][2]["text"]}) as server:
        monkeypatch.setenv("MIS_TEST_KEY", KEY)
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        batched = OpenAIClient(client.config, client.store, tmp_path / "cache-b.sqlite", batch=True,
                               batch_poll_seconds=0.02)
        results = ask(batched, *(request(shas, str(i)) for i in range(12)))
        run(client.aclose())
        assert [r.value.answer for r in results] == [f"Describe both images ({i})." for i in range(12)]
        assert server.state.chat_requests == 0 and len(server.state.batches) == 1
        sent = [json.loads(line)["custom_id"] for line in server.state.files["file-0"].splitlines()]
        answered = [json.loads(line)["custom_id"]
                    for line in server.state.files["file-out-batch_0"].splitlines()]
        assert sorted(answered) == sorted(sent) and answered != sent  # matched back out of order
        state = json.loads((tmp_path / "batches.json").read_text())
        assert state["batches"]["batch_0"]["status"] == "completed"
        again = OpenAIClient(client.config, client.store, tmp_path / "cache-b.sqlite", batch=True,
                             batch_poll_seconds=0.02)
        assert all(r.ok for r in ask(again, *(request(shas, str(i)) for i in range(12))))
        assert len(server.state.batches) == 1  # answered from the cache: nothing paid twice


def test_a_rerun_resumes_polling_a_submitted_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LoopbackServer(answer_with("ok"), batch_polls=1000) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        first = OpenAIClient(client.config, client.store, tmp_path / "c.sqlite", batch=True,
                             batch_poll_seconds=0.01)

        async def interrupted() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(first.structured(request(shas, "x")), 0.5)
            await first.aclose()

        run(interrupted())
        assert len(server.state.batches) == 1
        server.state.batch_polls = 0
        second = OpenAIClient(client.config, client.store, tmp_path / "c.sqlite", batch=True,
                              batch_poll_seconds=0.01)
        [result] = ask(second, request(shas, "x"))
        run(client.aclose())
        assert result.ok and len(server.state.batches) == 1


def test_batched_requests_are_billed_at_the_batch_share(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same request costs its list price sent directly and ``prices.batch`` of it through the
    Batch API; the cost cap counts the discounted price."""
    prices = {"input": 1000.0, "output": 1000.0, "batch": 0.5}
    with LoopbackServer(answer_with("ok")) as server:
        direct, shas = make_client(tmp_path / "d", server.url, monkeypatch, prices=prices)
        [sent] = ask(direct, request(shas, "x"))
        batched = OpenAIClient(direct.config, direct.store, tmp_path / "b.sqlite", batch=True,
                               batch_poll_seconds=0.02)
        [through_batch] = ask(batched, request(shas, "x"))
    assert sent.ok and through_batch.ok
    full, half = direct.usage.total.cost_usd, batched.usage.total.cost_usd
    assert full > 0 and half == pytest.approx(full / 2)
    assert batched.spent() == pytest.approx(half)


def test_a_batch_share_is_not_part_of_a_runs_identity() -> None:
    """Changing what batches cost asks the models nothing different: the run folder continues."""
    base = {"backend": "openai", "concepts": {"sources": [{"kind": "shipped", "path": "x"}]},
            "models": {"text": {"model": "m"}, "vision": {"model": "m"}, "judges": [{"model": "m"}],
                       "image": {"model": "i"}}}
    cheaper = json.loads(json.dumps(base))
    cheaper["models"]["text"]["prices"] = {"batch": 0.25}
    assert BuildConfig.model_validate(base).generation_hash() == \
        BuildConfig.model_validate(cheaper).generation_hash()


def test_a_batch_line_the_provider_blocked_is_a_blocked_reject_kept_for_reruns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A moderation block inside a batch's output is the same verdict as on a direct request:
    ``blocked`` (cached, so a rerun submits nothing), and another 4xx is ``request_rejected``."""
    def responder(body: dict[str, Any]) -> Any:
        text = body["messages"][0]["content"][2]["text"]
        if "(blocked)" in text:
            return Reply(status=400, error={"error": {"code": "moderation_blocked",
                                                      "message": "Your request was flagged."}})
        if "(odd)" in text:
            return Reply(status=422, error={"error": {"message": "unprocessable"}})
        return {"answer": "ok"}

    with LoopbackServer(responder) as server:
        client, shas = make_client(tmp_path, server.url, monkeypatch)
        batched = OpenAIClient(client.config, client.store, tmp_path / "b.sqlite", batch=True,
                               batch_poll_seconds=0.02)
        fine, blocked, odd = ask(batched, *(request(shas, item) for item in ("fine", "blocked", "odd")))
        assert fine.ok and blocked.reason == RejectReason.blocked and "flagged" in blocked.detail
        assert odd.reason == RejectReason.request_rejected
        again = OpenAIClient(client.config, client.store, tmp_path / "b.sqlite", batch=True,
                             batch_poll_seconds=0.02)
        _, blocked_again = ask(again, request(shas, "fine"), request(shas, "blocked"))
        run(client.aclose())
    assert blocked_again.reason == RejectReason.blocked
    assert len(server.state.batches) == 1  # the block was kept: nothing submitted again
