"""An eval killed with SIGKILL mid-run is finished by the same command: the same
``scores.json`` bytes as an uninterrupted eval, and only the requests that were in flight at
the kill are sent again (counted on the loopback server)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.eval_layout import KEY_ENV, eval_config, write_layout
from tests.support.loopback import LoopbackServer, Reply, prompt_text

CONCURRENCY = 4  # per model: at most 8 requests in flight
SUBS = (("Illegal Activity", "Property Crimes"), ("Violent", "Weapon-Related Violence"),
        ("Privacy", "Identity Theft"), ("Hate", "Gender Discrimination"))
LABELS = [{"label_perception": f"Perception Level{level}", "label_str": verdict}
          for level in (1, 2, 3) for verdict in ("Safe", "Unsafe")]


def responder(body: dict[str, Any]) -> Any:
    """Answers and labels fixed by the item's tag; some judge refusals too."""
    if "messages" not in body:  # a request cut short by the kill: its sender is gone
        return Reply(status=400)
    number = int(re.search(r"\[x(\d+)\]", prompt_text(body)).group(1))
    if body["messages"][0]["role"] != "system":
        return f"The first image and the second image, item {number}."
    if number % 17 == 0:
        return Reply(refusal="I can't judge this.")
    return LABELS[number % len(LABELS)]


def request_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()


def command(config: Path) -> list[str]:
    return [sys.executable, "-m", "mis_data", "eval", "--config", str(config), "--no-progress"]


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def run_to_end(config: Path, env: dict[str, str]) -> None:
    result = subprocess.run(command(config), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def kill_after(config: Path, env: dict[str, str], responses: Path, count: int) -> None:
    process = subprocess.Popen(command(config), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if lines(responses) >= count:
                os.kill(process.pid, signal.SIGKILL)
                assert process.wait() == -signal.SIGKILL
                return
            if process.poll() is not None:
                pytest.fail(f"the eval finished (exit {process.returncode}) before the kill point")
            time.sleep(0.002)
        pytest.fail("the kill point was never reached")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_killed_eval_resumes_to_the_same_scores(tmp_path: Path) -> None:
    items = [{"tag": f"x{n}", "category": SUBS[n % 4][0], "sub_category": SUBS[n % 4][1]}
             for n in range(1, 81)]
    write_layout(tmp_path, {"easy": items[:40], "hard": items[40:64], "real": items[64:]})
    env = {**os.environ, KEY_ENV: "sk-test"}
    with LoopbackServer(responder, latency=0.08, keep_bodies=True) as server:
        def config(name: str) -> Path:
            return eval_config(tmp_path / name, [{"path": str(tmp_path / "mis_test")}],
                               url=server.url, spec={"concurrency": CONCURRENCY})

        straight, killed = config("straight"), config("killed")
        run_to_end(straight, env)
        baseline = Counter(request_key(r.body) for r in server.state.received if r.body)
        mark = len(server.state.received)

        kill_after(killed, env, tmp_path / "killed/out/responses.jsonl", 25)
        assert lines(tmp_path / "killed/out/responses.jsonl") < 80
        run_to_end(killed, env)
        # A request the kill cut off mid-send arrives without a body: it was in flight.
        resumed = Counter(request_key(r.body) for r in server.state.received[mark:] if r.body)

    assert (tmp_path / "killed/out/scores.json").read_bytes() == \
        (tmp_path / "straight/out/scores.json").read_bytes()
    assert set(resumed) == set(baseline) and max(baseline.values()) == 1
    repeated = sum(resumed.values()) - len(resumed)
    assert repeated <= 2 * CONCURRENCY  # only what was in flight at the kill
    for name in ("responses", "judgements"):  # one line per item: nothing was redone
        assert lines(tmp_path / f"killed/out/{name}.jsonl") == 80
    scores = json.loads((tmp_path / "killed/out/scores.json").read_text())
    assert scores["totals"]["judge_failed"] == 4  # items 17, 34, 51, 68: refused, kept, counted


def test_a_killed_evals_usage_is_kept_and_counted_by_the_rerun(tmp_path: Path) -> None:
    """``usage.json`` is written as the eval goes: after a kill it holds what the killed
    session sent, and the rerun's total adds its own; only requests in flight at the kill
    (sent, no answer yet) can be missing from the count."""
    items = [{"tag": f"x{n}", "category": SUBS[n % 4][0], "sub_category": SUBS[n % 4][1]}
             for n in range(1, 41)]
    write_layout(tmp_path, {"easy": items})
    env = {**os.environ, KEY_ENV: "sk-test"}
    usage_file = tmp_path / "out/usage.json"
    with LoopbackServer(responder, latency=0.05) as server:
        config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url=server.url,
                             spec={"concurrency": CONCURRENCY})
        kill_after(config, env, tmp_path / "out/responses.jsonl", 10)
        killed = json.loads(usage_file.read_text())
        assert len(killed["sessions"]) == 1 and killed["total"]["requests"] >= 10
        run_to_end(config, env)
        sent = server.state.chat_requests
    usage = json.loads(usage_file.read_text())
    assert len(usage["sessions"]) == 2
    assert usage["sessions"][0]["total"]["requests"] >= killed["total"]["requests"]
    counted = usage["total"]["requests"]
    assert sent - 2 * CONCURRENCY <= counted <= sent
