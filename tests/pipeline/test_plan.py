"""`mis-data plan` against what builds really ask: request counts exactly (given the rates a
run turned out to have), tokens and dollars within 20 % on a loopback server that counts tokens
as a provider does; and `build` stops before spending above the threshold without --yes."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from mis_data.core.config import load_config
from mis_data.models.limits import image_tokens
from mis_data.pipeline.plan import Assumptions, make_plan
from tests.support import loopback
from tests.support.api import DISTINCT, KEY, api_config
from tests.support.builds import read_jsonl, run_cli
from tests.support.cli import write_config
from tests.support.loopback import LoopbackServer, mis_responder
from tests.support.paths import CONFIGS

SIDE = 256  # what the loopback's image model makes here, and the config says it makes
REASON = ("The request pairs the object with the place in a way that could put people nearby "
          "at risk of harm, so it stays in.")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def actual_by_stage(run: Path) -> dict[str, Counter[str]]:
    usage = json.loads((run / "usage.json").read_text(encoding="utf-8"))
    totals: dict[str, Counter[str]] = {}
    for session in usage["sessions"]:
        for row in session["by_stage_model"]:
            counter = totals.setdefault(row["stage"], Counter())
            for key in ("requests", "input_tokens", "output_tokens", "images", "cost_usd"):
                counter[key] += row[key]
    return totals


def observed(run: Path, **extra: Any) -> Assumptions:
    """The rates a finished run turned out to have, as plan assumptions."""
    questions = read_jsonl(run / "instructions.jsonl")
    judged = read_jsonl(run / "judgements.jsonl")
    train = sum(1 for j in judged if j["route"] == "train")
    assert questions and len(judged) == len(questions)  # nothing dropped on the way here
    return Assumptions(no_risk_rate=0, filter_drop_rate=0, dedup_rate=0, discard_rate=0,
                       refine_rate=0, train_share=train / len(judged), **extra)


def test_offline_demo_requests_are_exactly_the_plan(demo_run: Path) -> None:
    plan = make_plan(load_config(CONFIGS / "demo.yaml"), observed(demo_run))
    planned = {stage: entry["requests"] for stage, entry in plan.by_stage().items()}
    assert planned == {stage: c["requests"] for stage, c in actual_by_stage(demo_run).items()}
    assert plan.cost == 0.0 and plan.counts["concepts"] == 336  # the whole curated list


def test_generated_concepts_and_ranges(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, backend="openai", concepts={
        "sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")},
                    {"kind": "generated", "per_sub_category": 25, "per_request": 10}],
        "max_per_sub_category": 30}, images={"source": "t2i"}))
    plan = make_plan(config)
    generate = next(row for row in plan.rows if row.task == "concept_generate")
    assert (generate.requests, generate.max_requests) == (3 * 14, 6 * 14)
    assert plan.counts["concepts"] == 30 * 14  # 24+ shipped + 25 generated, capped at 30
    images = next(row for row in plan.rows if row.task == "generate_image")
    refined = plan.counts["refined_pairs"]
    assert images.requests == 2 * 30 * 14 + 2 * refined and images.max_requests == 4 * 30 * 14
    harmful = next(row for row in plan.rows if row.task == "instruction_harmful")
    assert harmful.max_requests == 2 * harmful.requests  # one feedback round at most
    assert "train_share=0.632" in "\n".join(plan.lines())


# -- a loopback server that bills like a provider --------------------------------------------

_request = threading.local()
PLAIN_COMPLETION = loopback.completion


def billed_prompt_tokens(body: dict[str, Any]) -> int:
    """Text and the response schema at 4 characters a token, images by OpenAI's tile rule."""
    chars, tokens = 0, 0
    for message in body.get("messages", []):
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                chars += len(part["text"])
            else:
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                with Image.open(io.BytesIO(data)) as image:
                    tokens += image_tokens(*image.size, part["image_url"].get("detail", "auto"))
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema")
    chars += len(json.dumps(schema)) if schema else 0
    return tokens + -(-chars // 4)


def billing_completion(content: str | None, refusal: str | None = None) -> dict[str, Any]:
    """The loopback's reply with usage counted from the request, as a provider bills it."""
    reply = PLAIN_COMPLETION(content, refusal)
    reply["usage"] = {"prompt_tokens": billed_prompt_tokens(_request.body),
                      "completion_tokens": -(-len(content or "") // 4)}
    return reply


def png_of_side(seed: str) -> str:
    noise = random.Random(seed).randbytes(8 * 8 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (8, 8), noise).resize((SIDE, SIDE)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def talkative(body: dict[str, Any]) -> dict[str, Any]:
    """mis_responder with one-sentence reasons, as a real model writes them."""
    _request.body = body
    answer = mis_responder(body)
    for key in ("reason", "explanation"):
        if key in answer:
            answer[key] = REASON
    for item in answer.get("questions", []):
        item["reason"] = REASON
    return answer


def loopback_build(folder: Path, *extra: str) -> tuple[Path, Path, Any]:
    """A build of three pairs (3 questions each) on the loopback; returns run, config, result."""
    concepts = folder / "concepts.yaml"
    concepts.write_text(DISTINCT)
    with LoopbackServer(talkative) as server:
        config = api_config(folder, server.url, labels={"min_words": 100, "max_words": 200})
        data = yaml.safe_load(config.read_text())
        data["concepts"] = {"sources": [{"kind": "shipped", "path": str(concepts)}]}
        data["models"]["judges"] = [dict(data["models"]["text"], model="judge-0")]
        data["models"]["image"]["size"] = f"{SIDE}x{SIDE}"
        config.write_text(yaml.safe_dump(data))
        result = run_cli("build", "--config", config, "--run-dir", folder / "run", "--no-progress",
                         *extra)
    return folder / "run", config, result


def within(planned: float, actual: float, tolerance: float = 0.2) -> bool:
    return abs(planned - actual) <= tolerance * actual


def test_plan_matches_a_loopback_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback, "completion", billing_completion)
    monkeypatch.setattr(loopback, "png_b64", png_of_side)
    run, config, result = loopback_build(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("plan: 3 concept pairs -> 9 questions")
    assert (run / "plan.json").exists()

    questions = read_jsonl(run / "instructions.jsonl")
    chars = sum(len(q["question"]) for q in questions) // len(questions)
    plan = make_plan(load_config(config), observed(run, question_chars=chars,
                                                   reason_chars=len(REASON)))
    actual = actual_by_stage(run)
    planned = plan.by_stage()
    assert {stage: entry["requests"] for stage, entry in planned.items()} == {
        stage: int(c["requests"]) for stage, c in actual.items()}
    report = {stage: (planned[stage]["input_tokens"], int(actual[stage]["input_tokens"]),
                      planned[stage]["output_tokens"], int(actual[stage]["output_tokens"]),
                      round(planned[stage]["cost_usd"], 5), round(actual[stage]["cost_usd"], 5))
              for stage in planned}
    for stage, (plan_in, real_in, plan_out, real_out, plan_cost, real_cost) in report.items():
        assert within(plan_in, real_in), (stage, report)
        if real_out:
            assert within(plan_out, real_out), (stage, report)
        assert within(plan_cost, real_cost), (stage, report)
    # Images: every image request carries two images, each billed by the tile rule at the size
    # the config says the image model makes (256 px: 85 + 170 x 1 tile).
    judge_images = next(row for row in plan.rows if row.task == "judge_images")
    assert judge_images.image_tokens == judge_images.requests * 2 * (85 + 170)

    stats = run_cli("stats", run)
    assert stats.exit_code == 0, stats.output
    section = stats.output.split("plan vs actual per stage")[1]
    assert re.search(rf"labels\s+\d+\s+{int(actual['labels']['requests'])}\s", section)


def test_build_above_the_threshold_stops_without_yes(tmp_path: Path) -> None:
    run, _, result = loopback_build(tmp_path, "--confirm-above", "0.000001")
    assert result.exit_code == 2
    assert "above --confirm-above" in result.output and "--yes" in result.output
    assert not run.exists()  # nothing was started: no folder, no request


def test_plan_with_batch_prices_chat_requests_at_the_batch_share() -> None:
    """``plan --batch``: chat rows cost ``prices.batch`` of the list price, image rows the same."""
    config = load_config(CONFIGS / "openai_mis_scale.yaml")
    listed, batched = make_plan(config), make_plan(config, batch=True)
    for row, cheap in zip(listed.rows, batched.rows, strict=True):
        share = 1.0 if row.role == "image" else 0.5
        assert cheap.cost_usd == pytest.approx(row.cost_usd * share, abs=1e-9), row.task
    assert batched.cost < listed.cost and any("--batch" in note for note in batched.notes)
