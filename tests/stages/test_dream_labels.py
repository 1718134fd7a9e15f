"""DREAM-style labels (issue #16 part 2, ``labels.style: dream``): risk statements with their
source before the answer, checked against the judges' per-image verdicts, kept on the label
record, rendered as an opening paragraph of plain sentences (each with its source in brackets,
no heading word) and kept as a column of the HF export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import load_dataset

from mis_data.core.records import JudgementRecord, LabelRecord, RejectRecord, RiskStatement
from mis_data.core.rundir import RunDir
from mis_data.stages.labels import observed_risks, risk_problem
from tests.support.api import KEY, api_build
from tests.support.cli import run_cli
from tests.support.loopback import mis_responder, prompt_text
from tests.support.paths import CONFIGS

CATEGORIES = {"Property Crimes", "Illegal Activity"}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def risk(source: str, category: str = "Property Crimes") -> RiskStatement:
    return RiskStatement(content="A risk seen in this sample, in a sentence.", source=source,
                         category=category)


def test_the_risk_rules() -> None:
    assert risk_problem([risk("image1"), risk("combination")], (True, False), CATEGORIES) is None
    missing = risk_problem([risk("combination")], (True, False), CATEGORIES)
    assert missing is not None and missing.reason.value == "label_risks" and "image1" in missing.detail
    hard = risk_problem([risk("text")], (False, False), CATEGORIES)
    assert hard is not None and "combination" in hard.detail
    unknown = risk_problem([risk("combination", "Burglary")], (False, False), CATEGORIES)
    assert unknown is not None and "Burglary" in unknown.detail


def test_an_offline_dream_build_keeps_risks_in_labels_and_exports(tmp_path: Path) -> None:
    data = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    data["labels"]["style"] = "dream"
    data["concepts"]["max_per_sub_category"] = 3
    data["taxonomy"] = str(CONFIGS / "taxonomy.yaml")
    data["prompts_dir"] = str(CONFIGS.parent / "prompts")
    data["concepts"]["sources"] = [{"kind": "shipped", "path": str(CONFIGS / "concepts")}]
    data["instructions"]["giveaway_phrases"] = str(CONFIGS / "giveaway_phrases.yaml")
    config = tmp_path / "dream.yaml"
    config.write_text(yaml.safe_dump(data))
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    run = RunDir(tmp_path / "run")
    judgements = run.read_by_id("judgements", JudgementRecord)
    labels = run.read("labels", LabelRecord)
    assert labels
    for label in labels:
        assert label.risks and label.text.startswith(observed_risks(label.risks) + "\n\n")
        assert "Observed risks" not in label.text
        flags = judgements[label.id].harmful_images
        sources = {r.source for r in label.risks}
        assert all(f"image{slot}" in sources for slot, flag in enumerate(flags, start=1) if flag)
        assert any(flags) or "combination" in sources
    train = load_dataset(str(tmp_path / "run/export/hf"), "train", cache_dir=str(tmp_path / "c"))
    rows = train["train"]
    train_split = (tmp_path / "run/splits/train.jsonl").read_text().splitlines()
    assert rows.num_rows == len(train_split) > 0
    assert all(json.loads(line)["risks"] for line in train_split)
    assert all(row["risks"] and row["label"].startswith(row["risks"][0]["content"].rstrip(". "))
               for row in rows)
    for fmt in ("hf", "internvl", "llamafactory", "mis"):
        checked = run_cli("validate", tmp_path / "run/export" / fmt, "--format", fmt)
        assert checked.exit_code == 0, checked.output


def test_default_labels_have_no_risks_field(demo_run: Path) -> None:
    assert all("risks" not in json.loads(line) for line in
               (demo_run / "labels.jsonl").read_text().splitlines())
    assert all("risks" not in json.loads(line) for line in
               (demo_run / "splits/train.jsonl").read_text().splitlines())


def dream_reply(name_images: bool) -> Any:
    """A label model that lists risks; with ``name_images`` False it never names an image."""
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        text = prompt_text(body)
        plain = dict(body, response_format={"type": "json_schema", "json_schema": {
            "name": "LabelAnswer", "schema": {"properties": {"answer": {}}}}})
        risks = [{"content": "The request and the two images together point to theft.",
                  "source": "combination", "category": "Property Crimes"}]
        if name_images and "first image harmful on its own" in text:
            risks.append({"content": "The first image shows a tool made for breaking in.",
                          "source": "image1", "category": "Property Crimes"})
        return {"risks": risks, **mis_responder(plain)}
    return answer


def responder(name_images: bool) -> Any:
    reply = dream_reply(name_images)

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        from tests.support.loopback import wanted_schema
        if set(wanted_schema(body).get("properties", {})) == {"risks", "answer"}:
            return reply(body)
        return mis_responder(body)
    return answer


@pytest.mark.parametrize("name_images", [True, False])
def test_dream_labels_over_http_follow_the_judges(tmp_path: Path, name_images: bool) -> None:
    run, state = api_build(tmp_path, responder(name_images), labels={"style": "dream"})
    judgements = run.read_by_id("judgements", JudgementRecord)
    flagged = {j.id for j in judgements.values() if j.route == "train" and any(j.harmful_images)}
    labels = {label.id: label for label in run.read("labels", LabelRecord)}
    rejected = {r.id for r in run.read("rejects", RejectRecord) if r.reason.value == "label_risks"}
    assert flagged, "the loopback judge marks the crowbar image harmful"
    if name_images:
        assert not rejected and flagged <= set(labels)
        assert all(label.risks and label.text.startswith(observed_risks(label.risks))
                   for label in labels.values())
    else:  # told once what is missing, still missing: rejected; the other samples are labelled
        assert rejected == flagged and not flagged & set(labels)
        assert any("add a risk statement with source image1" in json.dumps(r.body)
                   for r in state.received if r.body)
