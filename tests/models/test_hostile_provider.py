"""A real build against a provider that refuses, blocks and fails (``hostile.HostileProvider``),
over the loopback server (issue #26): fallback models fill refused pairs, blocks are rejects
that a rerun never asks again, a failing judge leaves the others to decide, twins are judged
before they join, targets are met with top-up rounds, and a rerun sends nothing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.core.records import (
    ConceptRecord,
    ImageRecord,
    InstructionRecord,
    JudgementRecord,
    RejectRecord,
    ReviewItem,
    TwinRecord,
)
from mis_data.core.rundir import RunDir
from mis_data.core.targets import read_targets
from tests.support.builds import tree_hashes
from tests.support.cli import run_cli, write_config
from tests.support.hostile import RISKY_SWAP, HostileProvider
from tests.support.loopback import LoopbackServer, Reply, mis_responder, wanted_schema
from tests.support.paths import CONFIGS

KEY = "sk-loopback-hostile"
SUBS = ["Physical Self-Injury", "Erotic Visual Content", "Property Crimes", "Cybercrime"]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def hostile_config(folder: Path, url: str, *, fallback: bool = True, per_sub: int = 3,
                   judges: int = 3, **extra: Any) -> Path:
    spec = {"base_url": url, "api_key_env": "MIS_LOOPBACK_KEY", "concurrency": 8,
            "max_retries": 1, "timeout": 10, "prices": {"input": 1.0, "output": 2.0,
                                                        "per_image": 0.01}}
    text = {**spec, "model": "hosted-text"}
    if fallback:
        text["fallback"] = [{**spec, "model": "open-text"}]
    settings: dict[str, Any] = {
        "backend": "openai",
        "models": {"text": text, "vision": {**spec, "model": "hosted-vision"},
                   "judges": [{**spec, "model": f"judge-{i}"} for i in range(judges)],
                   "image": {**spec, "model": "hosted-image"}},
        "concepts": {"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                     "max_per_sub_category": per_sub, "sub_categories": SUBS},
        "images": {"source": "t2i"}, "labels": {"min_words": 40},
        "exports": ["mis", "internvl", "llamafactory", "hf"], **extra}
    return write_config(folder, **settings)


def build(config: Path, run: Path) -> Any:
    result = run_cli("build", "--config", config, "--run-dir", run, "--no-progress", "--yes")
    assert result.exit_code == 0, result.output
    return result


def rejects(run: Path) -> list[RejectRecord]:
    return RunDir(run).rejects()


def by_reason(run: Path) -> Counter[tuple[str, str]]:
    return Counter((r.stage, r.reason.value) for r in rejects(run))


@pytest.fixture(scope="module")
def hostile_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One build with a fallback text model, three judges (one failing), t2i with blocks,
    twins and targets; then the same command again."""
    folder = tmp_path_factory.mktemp("hostile")
    provider = HostileProvider()
    mp = pytest.MonkeyPatch()
    mp.setenv("MIS_LOOPBACK_KEY", KEY)
    try:
        with LoopbackServer(provider, images=provider.images) as server:
            config = hostile_config(folder, server.url, twins={"ratio": 0.6},
                                    targets={"train": 4, "test": 2, "max_rounds": 3})
            build(config, folder / "run")
            sent = len(server.state.received)
            exports = tree_hashes(folder / "run/export")
            again = build(config, folder / "run")
            resent = len(server.state.received) - sent
    finally:
        mp.undo()
    return {"run": folder / "run", "provider": provider, "sent": sent, "resent": resent,
            "exports": exports, "again": again.output, "config": config}


def test_no_sample_is_lost_to_a_passing_fault_and_a_rerun_asks_nothing(hostile_build) -> None:
    run = hostile_build["run"]
    assert not [r for r in rejects(run) if r.reason.value == "api_error"]
    assert hostile_build["provider"].seen["judge_failed"] > 0
    assert hostile_build["resent"] == 0
    assert tree_hashes(run / "export") == hostile_build["exports"]


def test_a_fallback_model_writes_what_the_hosted_model_refused(hostile_build) -> None:
    run, provider = hostile_build["run"], hostile_build["provider"]
    assert sum(n for key, n in provider.seen.items() if key.startswith("refused:")) > 0
    assert not [r for r in rejects(run) if r.stage == "instructions"
                and r.reason.value in ("refused", "blocked")]
    records = RunDir(run).read("instructions", InstructionRecord)
    filled = [r for r in records if r.step_models and r.step_models["harmful"] == "open-text"]
    assert filled and all(r.step_models["modify"] == "hosted-text" for r in filled)
    usage = json.loads((run / "usage.json").read_text())
    outcomes = [row for session in usage["sessions"] for row in session["outcomes"]
                if row["task"] == "instruction_harmful" and row["model"] == "hosted-text"]
    assert sum(row["refused"] for row in outcomes) > 0
    refused_subs = {row["sub_category"] for row in outcomes if row["refused"]}
    assert refused_subs & {"Physical Self-Injury", "Erotic Visual Content"}
    stats = run_cli("stats", run)
    assert stats.exit_code == 0, stats.output
    assert "refusals and blocks per step and model" in stats.output
    assert "hosted-text" in stats.output and "refused or blocked per sub-category" in stats.output


def test_blocked_image_prompts_are_reworded_or_rejected_never_api_errors(hostile_build) -> None:
    run, provider = hostile_build["run"], hostile_build["provider"]
    assert provider.seen["image_blocked"] > 0
    images = RunDir(run).read("images", ImageRecord)
    reworded = [image for image in images if image.blocked]
    blocked = [r for r in rejects(run) if r.reason.value == "blocked"]
    assert reworded or blocked
    assert all(r.models for r in blocked)
    assert all("safety system" in image.blocked for image in reworded)


def test_a_failing_judge_leaves_the_decision_to_the_other_two(hostile_build) -> None:
    run = hostile_build["run"]
    judgements = RunDir(run).read("judgements", JudgementRecord)
    decided_without = [j for j in judgements if j.missing]
    assert decided_without
    assert all(len(j.votes) == 2 and j.missing[0].judge == "judge-2" for j in decided_without)
    assert all(len({vote.route for vote in j.votes}) == 1 for j in decided_without)
    assert all(len(j.votes) + len(j.missing or []) == 3 for j in judgements)


def test_twins_are_judged_and_the_risky_ones_stay_out(hostile_build) -> None:
    run = hostile_build["run"]
    folder = RunDir(run)
    twins = folder.read("twins", TwinRecord)
    assert twins and all(twin.votes and len(twin.votes) >= 2 for twin in twins)
    assert all(sum(not v.text_unsafe and not v.combination_harmful for v in twin.votes) >= 2
               for twin in twins)
    assert not [twin for twin in twins if RISKY_SWAP in (twin.object1, twin.object2)]
    still_risky = [r for r in rejects(run) if r.reason.value == "twin_still_risky"]
    assert still_risky and all("still see a risk" in r.detail for r in still_risky)
    exported = [json.loads(line) for split in ("train", "twins")
                for line in (run / f"splits/{split}.jsonl").read_text().splitlines()
                if (run / f"splits/{split}.jsonl").exists()]
    assert {row["id"] for row in exported if row.get("twin_of")} <= {twin.id for twin in twins}
    assert any(row.get("twin_of") for row in exported)


def test_targets_hold_the_shape(hostile_build) -> None:
    run = hostile_build["run"]
    rounds = read_targets(RunDir(run))
    assert rounds and rounds[-1]["targets"] == {"train": dict.fromkeys(sorted(SUBS), 4),
                                                "test": dict.fromkeys(sorted(SUBS), 2)}
    counts: dict[str, Counter[str]] = {"train": Counter(), "test": Counter()}
    for split, side in (("train", "train"), ("val", "train"), ("easy", "test"), ("hard", "test")):
        path = run / f"splits/{split}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            row = json.loads(line)
            if not row.get("twin_of"):
                counts[side][row["sub_category"]] += 1
    notes = " ".join(note for entry in rounds for note in entry["notes"])
    for side, target in (("train", 4), ("test", 2)):
        for sub in SUBS:
            assert abs(counts[side][sub] - target) <= 1 or sub in notes, (side, sub, counts)
    stats = run_cli("stats", run)
    assert "targets:" in stats.output and "train want" in stats.output


def test_refused_pairs_without_a_fallback_are_rejected_then_topped_up(tmp_path: Path) -> None:
    """No fallback: refused pairs are rejects naming the model; short sub-categories get more
    concepts in the next round. Adding a fallback to the same run then asks it for them."""
    provider = HostileProvider(often_refused_rate=0.9, refuse_rate=0.0, prompt_block_rate=0.0,
                               block_rate=0.0, failure_rate=0.0, risky_twins=0.0)
    with LoopbackServer(provider, images=provider.images) as server:
        config = hostile_config(tmp_path, server.url, fallback=False, judges=1, per_sub=2,
                                targets={"train": 3, "test": 1, "max_rounds": 3})
        build(config, tmp_path / "run")
        refused = [r for r in rejects(tmp_path / "run") if r.reason.value == "refused"]
        assert refused and all(r.models == ["hosted-text"] and r.stage == "instructions"
                               for r in refused)
        assert {r.sub_category for r in refused} <= {"Physical Self-Injury",
                                                     "Erotic Visual Content"}
        rounds = read_targets(RunDir(tmp_path / "run"))
        topped = {sub for entry in rounds for sub in entry["top_up"]}
        assert len(rounds) >= 2 and topped & {"Physical Self-Injury", "Erotic Visual Content"}
        concepts = RunDir(tmp_path / "run").read("concepts", ConceptRecord)
        assert any(concept.round for concept in concepts)
        # the same run with a fallback model: the identity holds, the refused pairs are asked
        data = yaml.safe_load(config.read_text())
        data["models"]["text"]["fallback"] = [dict(data["models"]["text"], model="open-text")]
        config.write_text(yaml.safe_dump(data))
        before = Counter(r.body.get("model") for r in server.state.received)
        build(config, tmp_path / "run")
        after = Counter(r.body.get("model") for r in server.state.received)
    assert after["open-text"] > before["open-text"]
    assert not [r for r in rejects(tmp_path / "run") if r.reason.value == "refused"]


def test_an_image_blocked_twice_drops_its_pair_and_is_never_asked_again(tmp_path: Path) -> None:
    provider = HostileProvider(refuse_rate=0.0, often_refused_rate=0.0, prompt_block_rate=0.0,
                               block_rate=0.0, failure_rate=0.0, blocked_words=("a photo",
                                                                                "an image"))
    with LoopbackServer(provider, images=provider.images) as server:
        config = hostile_config(tmp_path, server.url, judges=1, per_sub=1)
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--no-progress", "--yes")
        assert result.exit_code == 0, result.output
        sent = len(server.state.received)
        build(config, tmp_path / "run")
        assert len(server.state.received) == sent
    blocked = [r for r in rejects(tmp_path / "run") if r.stage == "images"]
    assert blocked and {r.reason.value for r in blocked} == {"blocked"}
    assert all("blocked twice" in r.detail and r.models == ["hosted-image"] for r in blocked)
    assert (tmp_path / "run/cache.sqlite").exists()


def judges_split(body: dict[str, Any]) -> Any:
    """judge-0 calls every question unsafe, judge-1 safe, judge-2's server always fails."""
    fields = set(wanted_schema(body).get("properties", {}))
    model = body.get("model")
    if model == "judge-2":
        return Reply(status=500)
    answer = mis_responder(body)
    if fields == {"label", "sub_category", "reason"} and model in ("judge-0", "judge-1"):
        answer["label"] = "Unsafe" if model == "judge-0" else "Safe"
    return answer


def test_without_a_majority_a_missing_judge_is_named_and_asked_again(tmp_path: Path) -> None:
    with LoopbackServer(judges_split) as server:
        config = hostile_config(tmp_path, server.url, per_sub=1,
                                concepts={"sources": [{"kind": "shipped",
                                                       "path": str(CONFIGS / "concepts")}],
                                          "max_per_sub_category": 1,
                                          "sub_categories": ["Property Crimes"]})
        build(config, tmp_path / "run")
        run = RunDir(tmp_path / "run")
        waiting = [r for r in run.rejects() if r.stage == "judgements"]
        assert waiting and {r.reason.value for r in waiting} == {"judge_missing"}
        queue = run.read("review_queue", ReviewItem)
        assert queue and all(item.missing and item.missing[0].judge == "judge-2"
                             for item in queue)
        sent = len(server.state.received)
        build(config, tmp_path / "run")
        again = server.state.received[sent:]
    assert again and {r.body.get("model") for r in again} == {"judge-2"}
