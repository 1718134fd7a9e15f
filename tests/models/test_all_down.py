"""Every server of a model role down: the build (or eval) stops with one line (issue #27).

It used to stall in silence (a role of several servers waited for one to come back) or reject
item after item as ``api_error`` (a single server). Now a role whose every server refuses
connections or times out for ``all_down_seconds`` stops the command with exit 4, naming the
role's servers; what is finished is kept and the same command finishes it once they are back.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.core.config import load_config
from mis_data.models.base import ServersDown
from mis_data.models.client import OpenAIClient
from tests.support.api import KEY, Dies, api_config
from tests.support.builds import tree_hashes
from tests.support.cli import run_cli
from tests.support.eval_client import make_client, text_request
from tests.support.eval_layout import KEY_ENV, RELEASED, eval_config, write_layout
from tests.support.loopback import LoopbackServer, mis_responder
from tests.support.paths import CONFIGS

ONE_LINE = "run the same command again when they are back"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    monkeypatch.setenv(KEY_ENV, "sk-dummy")


def nobody_listens() -> str:
    """The URL of a 127.0.0.1 port that was free a moment ago: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def impatient_config(folder: Path, url: str, **extra: Any) -> Path:
    """``api_config`` with ``all_down_seconds: 1`` on every role."""
    config = api_config(folder, url, per_sub=1, **extra)
    data = yaml.safe_load(config.read_text())
    for spec in (data["models"]["text"], data["models"]["vision"], data["models"]["image"],
                 *data["models"]["judges"]):
        spec["all_down_seconds"] = 1
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_build_whose_server_refuses_every_connection_stops_with_one_line(tmp_path: Path) -> None:
    url = nobody_listens()
    config = impatient_config(tmp_path, url)
    started = time.monotonic()
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    seconds = time.monotonic() - started
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        f"stopped: every server of the text role (loopback-vlm at {url}) refused connections or "
        f"timed out for 1 s; finished work is kept: {ONE_LINE}"]
    assert seconds < 10  # about 1 s of refusals, then the stop
    assert (tmp_path / "run/rejects.jsonl").read_bytes() == b""  # no item blamed for it
    assert KEY not in result.output


def test_a_server_that_dies_mid_build_stops_it_and_the_same_command_finishes_it(
        tmp_path: Path) -> None:
    with LoopbackServer(mis_responder) as server:
        clean = impatient_config(tmp_path / "clean", server.url)
        assert run_cli("build", "--config", clean, "--run-dir", tmp_path / "clean/run",
                       "--no-progress").exit_code == 0
    dies = Dies(after=40)
    with LoopbackServer(dies) as dying:
        dies.server = dying
        port, url = dying.httpd.server_address[1], dying.url
        config = impatient_config(tmp_path, url)
        command = ("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        stopped = run_cli(*command)
    assert stopped.exit_code == 4, stopped.output
    # The dying server's own threads print its dropped connections to this process's stderr.
    # Stages stream into each other, so whichever role (all on this server) waited out the
    # second first names itself.
    last = stopped.stderr.splitlines()[-1]
    role = last.removeprefix("stopped: every server of the ").split(" role ")[0]
    assert (role in ("text", "vision", "image") or role.startswith("judge")) and last == (
        f"stopped: every server of the {role} role (loopback-vlm at {url}) refused connections "
        f"or timed out for 1 s; finished work is kept: {ONE_LINE}")
    assert stopped.stderr.count("stopped:") == 1
    kept = (tmp_path / "run/instructions.jsonl").read_bytes().count(b"\n")
    assert kept > 0 and b"api_error" not in (tmp_path / "run/rejects.jsonl").read_bytes()

    with LoopbackServer(mis_responder, port=port) as back:
        again = run_cli(*command)
    assert again.exit_code == 0, again.output
    assert tree_hashes(tmp_path / "run/export") == tree_hashes(tmp_path / "clean/run/export")
    assert back.state.chat_requests < server.state.chat_requests  # the kept work is not redone


def test_a_dead_role_stops_while_a_live_one_answers(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    dead = nobody_listens()
    with LoopbackServer(lambda body: "The first image shows a shop.") as live:
        client, shas = make_client(tmp_path, live.url, monkeypatch)
        spec = client.lanes["model"].spec
        client = OpenAIClient(None, client.store, tmp_path / "cache2.sqlite", roles={
            "model": spec.model_copy(update={"base_url": dead, "all_down_seconds": 1}),
            "judge": spec.model_copy(update={"model": "judge", "all_down_seconds": 1}),
            "spread": spec.model_copy(update={"model": "spread", "base_url": [dead, live.url],
                                              "all_down_seconds": 0.2})})

        async def go() -> tuple[float, str, list[Any]]:
            started = time.monotonic()
            down = asyncio.create_task(client.complete(text_request(shas, "dead")))
            answers = [await client.complete(replace(text_request(shas, f"live {n}"), role=role))
                       for n in range(6) for role in ("judge", "spread")]
            with pytest.raises(ServersDown) as stop:
                await down
            await client.aclose()
            return time.monotonic() - started, str(stop.value), answers

        seconds, message, answers = asyncio.run(go())
    assert 1 <= seconds < 5
    assert message.startswith(f"every server of the model role (vlm at {dead}) refused")
    assert live.url not in message
    assert all(answer.ok for answer in answers)  # the judge, and a role with one live server


def test_an_eval_whose_model_is_down_stops_with_one_line(tmp_path: Path) -> None:
    url = nobody_listens()
    write_layout(tmp_path, {"easy": RELEASED["easy"]})
    config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url=url,
                         spec={"all_down_seconds": 1})
    result = run_cli("eval", "--config", config, "--no-progress")
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [
        f"stopped: every server of the model role (vlm-under-test at {url}) refused connections "
        f"or timed out for 1 s; finished work is kept: {ONE_LINE}"]


def test_when_to_give_up_is_not_part_of_the_run_identity() -> None:
    """A run folder made before ``all_down_seconds`` existed, or with another value, resumes."""
    config = load_config(CONFIGS / "vllm.yaml", {})
    models = config.models.model_copy(update={"text": config.models.text.model_copy(
        update={"all_down_seconds": 5})})
    assert config.model_copy(update={"models": models}).generation_hash() == \
        config.generation_hash()
