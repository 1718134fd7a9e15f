"""``mis-data build`` with ``backend: openai`` against the loopback server, faults included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mis_data.core.ids import parent_id
from mis_data.core.records import ConceptRecord, ImageRecord, InstructionRecord
from mis_data.core.rundir import RunDir
from mis_data.stages.instructions import IMAGE_REFS, InstructionChecker
from tests.support.api import KEY, api_config
from tests.support.builds import tree_hashes
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer


def stage_inputs(run: RunDir, rejects: list) -> dict[str, set[str]]:
    """The work items each stage must account for, from the records of the stages before it."""
    instructions = run.read("instructions", InstructionRecord)
    pairs = run.output_ids("pairs")
    near_duplicates = {r.id for r in rejects if r.stage == "dedup"}
    with_questions = {i.concept_id for i in instructions}
    return {
        "instructions": run.output_ids("concepts"),
        "images": with_questions,
        "pairs": with_questions,
        "judgements": {i.id for i in instructions if i.concept_id in pairs} - near_duplicates,
    }




@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def test_api_build_end_to_end_and_rerun_asks_nothing(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        config = api_config(tmp_path, server.url)
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert result.exit_code == 0, result.output
        counts = json.loads((tmp_path / "run/splits/manifest.json").read_text())["counts"]
        assert counts["train"] > 0 and counts["easy"] > 0 and counts["hard"] > 0
        assert all(r.images == 2 for r in server.state.received
                   if "Write the assistant's answer" in json.dumps(r.body))
        run = RunDir(tmp_path / "run")
        checker = InstructionChecker(IMAGE_REFS["ordinal"], [], 30, 300)
        concepts = run.read_by_id("concepts", ConceptRecord)
        for instruction in run.read("instructions", InstructionRecord):
            assert checker.problem(instruction.question, concepts[instruction.concept_id]) is None
        images = run.read("images", ImageRecord)
        assert len({i.sha256 for i in images}) == len(list((tmp_path / "run/images").rglob("*.png")))
        manifest = json.loads((tmp_path / "run/manifest.json").read_text())
        assert manifest["backend"] == "openai" and manifest["usage"]["total"]["cost_usd"] > 0
        sent = len(server.state.received)
        again = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert again.exit_code == 0 and len(server.state.received) == sent


def test_faults_lose_nothing_and_the_key_is_nowhere(tmp_path: Path) -> None:
    rates = {"429": 0.10, "500": 0.05, "malformed": 0.05, "refusal": 0.05}
    with LoopbackServer(rates=rates, retry_after=0.01) as server:
        config = api_config(tmp_path, server.url, per_sub=3)
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert result.exit_code == 0, result.output
        faults = dict(server.state.faults_sent)
        # Retries can run out (api_error): such items stay pending, and the same command
        # finishes them. After that, every item must be an output or a final reject.
        server.state.rates = {}
        again = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert again.exit_code == 0, again.output
    run = RunDir(tmp_path / "run")
    assert "api_error" not in {r.reason.value for r in run.rejects()}
    rejects = run.rejects()
    # Refusals were sent; each refused item ended as a record (the prompt's research framing,
    # asked once after a refusal, got an answer) or a final ``refused`` reject (refused twice):
    # which one depends on the order requests arrive in, so only the invariant below is asserted.
    assert faults.get("refusal", 0) > 0
    for stage, inputs in stage_inputs(run, rejects).items():
        item = parent_id if stage in ("instructions", "images") else (lambda record_id: record_id)
        outputs = run.output_ids(stage)
        rejected = {r.id for r in rejects if r.stage == stage}
        assert outputs.isdisjoint(rejected), stage
        assert {item(i) for i in outputs | rejected} == inputs, stage
        lines = (run.path / f"{stage}.jsonl").read_text().splitlines()
        assert len(lines) == len(outputs), f"{stage}: duplicated records"
    assert faults.get("429", 0) > 0 and faults.get("500", 0) > 0 and faults.get("malformed", 0) > 0
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.output and KEY not in again.output


def test_a_killed_api_build_resumes_without_asking_again(tmp_path: Path) -> None:
    def body_key(body: dict) -> str:
        return json.dumps(body.get("messages"), sort_keys=True)

    with LoopbackServer(latency=0.02) as server:
        config = api_config(tmp_path, server.url, per_sub=2)
        reference = run_cli("build", "--config", config, "--run-dir", tmp_path / "ref", "--no-progress")
        assert reference.exit_code == 0, reference.output
        command = [sys.executable, "-m", "mis_data", "build", "--config", str(config),
                   "--run-dir", str(tmp_path / "run"), "--no-progress"]
        env = {**os.environ, "MIS_LOOPBACK_KEY": KEY}
        start = len(server.state.received)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        labels = tmp_path / "run/labels.jsonl"
        deadline = time.monotonic() + 120
        while not (labels.exists() and labels.read_bytes().count(b"\n") >= 2):
            assert process.poll() is None and time.monotonic() < deadline, "finished before the kill"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        first = [body_key(r.body) for r in server.state.received[start:] if r.body]
        middle = len(server.state.received)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        second = [body_key(r.body) for r in server.state.received[middle:] if r.body]
    repeated = set(first) & set(second)
    assert len(repeated) <= 8, "only requests in flight at the kill may be asked again"
    assert tree_hashes(tmp_path / "run/export") == tree_hashes(tmp_path / "ref/export")
