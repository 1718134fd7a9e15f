"""One model role spread over several servers (issue #20): the least busy server takes the next
request, a server that dies mid-build rests while the others carry its requests, nothing is lost
or asked twice, and the stats say which server did what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mis_data.core.config import ModelSpec
from mis_data.core.records import RejectRecord
from mis_data.core.rundir import RunDir
from tests.support.api import KEY, Dies, api_config
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer, mis_responder


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)




def spread_config(folder: Path, urls: list[str]) -> Path:
    config = api_config(folder, urls[0], per_sub=1)
    data = yaml.safe_load(config.read_text())
    for role in ("text", "vision", "image"):
        spec = data["models"][role]
        spec["base_url"], spec["concurrency"], spec["cooldown_seconds"] = urls, 4, 60
        spec["max_retries"] = 1  # one retry: it must go to a live server
    data["models"]["judges"] = [dict(data["models"]["text"], model="judge-0")]
    config.write_text(yaml.safe_dump(data))
    return config


def split_bytes(run: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((run / "splits").glob("*.jsonl"))}


def test_a_server_that_dies_mid_build_loses_nothing_and_a_rerun_asks_nothing(
        tmp_path: Path) -> None:
    with LoopbackServer(mis_responder) as alone:
        single = spread_config(tmp_path / "single", [alone.url])
        result = run_cli("build", "--config", single, "--run-dir", tmp_path / "single/run",
                         "--no-progress", "--yes")
        assert result.exit_code == 0, result.output
    expected = split_bytes(tmp_path / "single/run")
    total = alone.state.chat_requests + sum(
        1 for r in alone.state.received if r.path.endswith("/images/generations"))

    dies = Dies(after=25)
    with LoopbackServer(mis_responder) as first, LoopbackServer(dies) as second, \
            LoopbackServer(mis_responder) as third:
        dies.server = second
        config = spread_config(tmp_path / "spread", [first.url, second.url, third.url])
        run_dir = tmp_path / "spread/run"
        result = run_cli("build", "--config", config, "--run-dir", run_dir, "--no-progress", "--yes")
        assert result.exit_code == 0, result.output
        assert dies.seen >= dies.after and second.state.in_flight == 0
        carried = [len(s.state.received) for s in (first, second, third)]
        assert carried[0] > 0 and carried[2] > 0
        assert sum(carried) >= total  # every request answered once, the dropped ones again

        run = RunDir(run_dir)
        assert not [r for r in run.read("rejects", RejectRecord) if r.reason.value == "api_error"]
        assert split_bytes(run_dir) == expected  # same answers as one server gave

        usage = json.loads((run_dir / "usage.json").read_text())
        servers = {(row["model"], row["server"]): row for session in usage["sessions"]
                   for row in session["by_server"]}
        dead = [row for (_, url), row in servers.items() if url == second.url]
        assert dead and sum(row["errors"] for row in dead) >= 1
        stats = run_cli("stats", run_dir)
        assert stats.exit_code == 0 and "requests per server" in stats.output
        assert first.url in stats.output and second.url in stats.output

        before = [len(s.state.received) for s in (first, third)]
        again = run_cli("build", "--config", config, "--run-dir", run_dir, "--no-progress", "--yes")
        assert again.exit_code == 0, again.output
        assert [len(s.state.received) for s in (first, third)] == before


def test_the_least_busy_free_server_takes_the_next_request() -> None:
    """Three servers with 2 slots each: 6 requests at once spread 2-2-2; a resting server is
    passed over until its cool-down ends; a lone server never rests."""
    import asyncio

    from mis_data.models.servers import Server, ServerPool

    def pool(count: int, cooldown: float = 30) -> ServerPool:
        return ServerPool([Server(url=f"s{i}", client=None, concurrency=2, order=i)  # type: ignore[arg-type]
                           for i in range(count)], cooldown=cooldown)

    async def take(servers: ServerPool, count: int) -> list[str]:
        return [(await servers.acquire()).url for _ in range(count)]

    three = pool(3)
    taken = asyncio.run(take(three, 6))
    assert taken[:3] == ["s0", "s1", "s2"] and sorted(taken) == ["s0", "s0", "s1", "s1", "s2", "s2"]

    resting = pool(3)
    assert resting.rest(resting.servers[0], "test") and resting.others_awake(resting.servers[0])
    assert asyncio.run(take(resting, 4)) == ["s1", "s2", "s1", "s2"]

    brief = pool(2, cooldown=0.05)
    brief.rest(brief.servers[0], "test")
    brief.rest(brief.servers[1], "test")
    assert asyncio.run(take(brief, 1)) == ["s0"]  # everyone resting: wait for the first back
    assert not pool(1).rest(pool(1).servers[0], "test")


def test_servers_are_a_list_or_endpoints_not_both() -> None:
    spec = ModelSpec(model="m", endpoints=[{"base_url": "http://a/v1", "concurrency": 8},
                                           {"base_url": "http://b/v1", "api_key_env": "B_KEY"}],
                     concurrency=4)
    assert spec.capacity == 12 and spec.key_variables() == ["B_KEY", "OPENAI_API_KEY"]
    assert ModelSpec(model="m", base_url=["http://a/v1", "http://b/v1"]).capacity == 32
    for bad in ({"base_url": "http://a/v1", "endpoints": [{"base_url": "http://b/v1"}]},
                {"base_url": []}, {"base_url": ["http://a/v1", "http://a/v1"]},
                {"endpoints": [{"base_url": "http://a/v1"}, {}]}):
        with pytest.raises(ValueError):
            ModelSpec(model="m", **bad)
