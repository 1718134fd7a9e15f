"""``--batch`` builds against the loopback Batch API (``/v1/files``, ``/v1/batches``): a batch
that expires half done and one that fails in part still give the whole dataset, a build stopped
while polling resumes its batches without submitting a request twice, and each step's requests
(with the requests of pairs that are ready early) share as few sequential batches as the recipe
allows."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.pipeline.plan import plan_config
from mis_data.pipeline.runner import prepare, run_build
from tests.stages.test_rewrite import rewrite_responder
from tests.support.api import KEY, api_config
from tests.support.builds import tree_hashes
from tests.support.loopback import LoopbackServer


def batch_config(tmp_path: Path, url: str) -> Path:
    config = api_config(tmp_path, url, per_sub=1)
    data = yaml.safe_load(config.read_text())
    data["images"] = {"source": "typography"}  # image generation has no Batch API
    config.write_text(yaml.safe_dump(data))
    return config


async def batch_build(config: Path, run: Path, stop_after: float | None = None) -> None:
    ctx = prepare(config, run, batch=True, show_progress=False)
    for runner in ctx.client.batches.values():  # poll the loopback often, not every 10 s
        runner.poll_seconds = 0.02
    if stop_after is None:
        await asyncio.wait_for(run_build(ctx), 300)  # a stuck poller fails here, not in CI's limit
        return
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run_build(ctx), stop_after)


def submitted_ids(server: LoopbackServer) -> Counter[str]:
    """How many times each request was put in a batch, over every batch the server got."""
    return Counter(json.loads(line)["custom_id"] for batch in server.state.batches.values()
                   for line in server.state.files[batch["input_file_id"]].splitlines())


def answered_ids(server: LoopbackServer) -> Counter[str]:
    """How many times each request was answered (and billed), over every batch's output file."""
    return Counter(json.loads(line)["custom_id"] for batch in server.state.batches.values()
                   if batch.get("output_file_id")
                   for line in server.state.files[batch["output_file_id"]].splitlines())


def exported(run: Path) -> dict[str, str]:
    return {name: digest for name, digest in tree_hashes(run / "export").items()}


def test_an_expired_and_a_partly_failed_batch_still_give_the_whole_dataset(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(batch_polls=1) as server:
        asyncio.run(batch_build(batch_config(tmp_path / "a", server.url), tmp_path / "a" / "run"))
        clean = len(server.state.batches)
    with LoopbackServer(batch_polls=1, batch_outcomes=["expired", "partial"]) as server:
        asyncio.run(batch_build(batch_config(tmp_path / "b", server.url), tmp_path / "b" / "run"))
        statuses = Counter(batch["status"] for batch in server.state.batches.values())
        submitted, answered = submitted_ids(server), answered_ids(server)
    assert statuses["expired"] == 1 and len(server.state.batches) > clean
    # what was left without an answer went out again until answered; nothing was paid twice
    assert max(submitted.values()) > 1 and set(answered) == set(submitted)
    assert max(answered.values()) == 1 and server.state.chat_requests == 0
    assert exported(tmp_path / "a" / "run") == exported(tmp_path / "b" / "run")


def test_polls_that_fail_for_a_while_are_tried_again(tmp_path: Path, monkeypatch: Any) -> None:
    """A provider's bad minute while polling (500s): the build keeps polling the batches it
    paid for and finishes, submitting nothing twice."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(batch_polls=1, poll_failures=4) as server:
        asyncio.run(batch_build(batch_config(tmp_path, server.url), tmp_path / "run"))
        assert server.state.poll_failures == 0  # every failing poll was met
        assert max(submitted_ids(server).values()) == 1
    assert (tmp_path / "run" / "export").is_dir()


def test_a_build_stopped_while_polling_resumes_without_submitting_twice(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(batch_polls=10**6) as server:  # the first batch never finishes
        config = batch_config(tmp_path, server.url)
        asyncio.run(batch_build(config, tmp_path / "run", stop_after=3.0))
        assert len(server.state.batches) == 1
        state = json.loads((tmp_path / "run" / "batches.json").read_text())
        assert list(state["batches"]) == ["batch_0"]  # kept before polling began
        server.state.batch_polls = 0
        asyncio.run(batch_build(config, tmp_path / "run"))
        assert max(submitted_ids(server).values()) == 1  # no request submitted twice
        assert server.state.chat_requests == 0
    assert (tmp_path / "run" / "export").is_dir()


def sequential_rounds(server: LoopbackServer) -> int:
    """How many batches had to wait for one another: a batch submitted after the last poll of
    the batch before it in the chain starts a new round."""
    submitted = [r.at for r in server.state.received
                 if r.path.endswith("/batches") and isinstance(r.body, dict) and r.body]
    last_poll: dict[str, float] = {}
    for r in server.state.received:
        name = r.path.rstrip("/").rsplit("/", 1)[-1]
        if "/batches/" in r.path and name.startswith("batch_"):
            last_poll[name] = r.at
    ids = sorted(server.state.batches, key=lambda name: int(name.split("_")[1]))
    rounds, end = 0, -1.0
    for start, finish in sorted(zip(submitted, (last_poll[i] for i in ids), strict=True), key=lambda x: x[1]):
        if start >= end:
            rounds, end = rounds + 1, finish
    return rounds


@pytest.mark.parametrize("extra", [
    {},
    {"images": {"source": "t2i", "critique": True}},  # the critic waits for the detox
    {"twins": {"ratio": 1.0}, "rewrite": {}},  # the twins and the rewrites after the labels
], ids=["recipe", "critic", "twins-rewrites"])
def test_the_plan_says_how_many_sequential_batches_a_build_waits_for(
        tmp_path: Path, monkeypatch: Any, extra: dict[str, Any]) -> None:
    """``plan --batch`` prints the rounds a real ``--batch`` build takes (each can take up to
    24 h at a provider), and every chat request of the build goes through the Batch API: the
    responder's free-text answers of the rewrites too, which were sent directly (at full price
    but billed at the batch price)."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(rewrite_responder, batch_polls=1) as server:
        config = batch_config(tmp_path, server.url)
        data = yaml.safe_load(config.read_text())
        data.update(extra)
        if "rewrite" in extra:
            data["models"]["responder"] = dict(data["models"]["text"], model="loopback-responder")
        config.write_text(yaml.safe_dump(data))
        asyncio.run(batch_build(config, tmp_path / "run"))
        measured = sequential_rounds(server)
        assert server.state.chat_requests == 0
    plan = plan_config(config, batch=True)
    assert plan.counts["batch_rounds"] == measured
    assert plan.counts["batch_rounds_max"] > measured
    assert any(f"{measured} sequential batch rounds" in line for line in plan.lines())
