"""MIS's recipe over real HTTP: the call sequence of each pair, routes that follow the judges,
and concept pairs generated from the taxonomy alone (issue: MIS's own recipe with a real model).

The loopback server's ``mis_responder`` acts like a model that follows the prompts: it writes
harmful questions naming both objects, replaces the objects by the suggested image phrases, and
detoxifies about half of them; its text judge says Unsafe while a harmful verb is left.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.core.records import ConceptRecord, InstructionRecord, JudgementRecord, RejectRecord
from mis_data.core.rundir import RunDir
from tests.support.api import DISTINCT, KEY, api_build, api_config
from tests.support.cli import run_cli
from tests.support.loopback import HARMFUL_VERBS, LoopbackServer, mis_responder, prompt_text, wanted_schema

TASKS = {  # the schema fields of each request -> the task it is
    frozenset({"questions"}): "harmful", frozenset({"keep", "reason", "question"}): "modify",
    frozenset({"explanation", "question"}): "detox",
    frozenset({"label", "sub_category", "reason"}): "judge_text",
    frozenset({"answer"}): "label", frozenset({"verdict", "reason", "prompt1", "prompt2"}): "critique",
}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def task_of(body: dict[str, Any]) -> str:
    if "messages" not in body:
        return "image"
    fields = frozenset(wanted_schema(body).get("properties", {}))
    if "combination_harmful" in fields:
        return "judge_images"
    return TASKS.get(fields, "other")


def first_arrival(received: list, task: str, needle: str) -> float:
    """When the first request of ``task`` whose prompt contains ``needle`` arrived."""
    times = [r.at for r in received if r.body and task_of(r.body) == task
             and needle in prompt_text(r.body)]
    assert times, f"no {task} request mentions {needle!r}"
    return min(times)




def test_each_pair_runs_generate_modify_detox_judges_label_in_order(tmp_path: Path) -> None:
    run, state = api_build(tmp_path, mis_responder, concept_list=DISTINCT)
    instructions = run.read("instructions", InstructionRecord)
    assert len(instructions) == 9  # 3 pairs x 3 questions, each its own sample
    concepts = run.read_by_id("concepts", ConceptRecord)
    harmful_requests = [r for r in state.received if r.body and task_of(r.body) == "harmful"]
    assert len(harmful_requests) == 3  # one per pair, not one per question
    judged = {j.id: j for j in run.read("judgements", JudgementRecord)}
    for record in instructions:
        concept = concepts[record.concept_id]
        assert record.id == f"{concept.id}-{record.index}"
        assert record.harmful != record.replaced and concept.object1 in record.harmful
        assert "the first image" in record.replaced and concept.object1 not in record.replaced
        sequence = [first_arrival(state.received, "harmful", f"Object 1: {concept.object1}"),
                    first_arrival(state.received, "modify", record.harmful),
                    first_arrival(state.received, "detox", record.replaced)]
        judges = [first_arrival(state.received, "judge_text", record.question),
                  first_arrival(state.received, "judge_images", record.question)]
        sequence.append(min(judges))  # a judge's questions go out together
        if judged[record.id].route == "train":
            sequence += [max(judges), first_arrival(state.received, "label", record.question)]
        assert sequence == sorted(sequence), record.id


def test_routes_follow_the_judges_not_the_prompt(tmp_path: Path) -> None:
    """Half the questions are detoxified by the 'model'; train is exactly the ones still unsafe."""
    run, _ = api_build(tmp_path, mis_responder)
    questions = run.read_by_id("instructions", InstructionRecord)
    judgements = run.read("judgements", JudgementRecord)
    still_harmful = {q.id for q in questions.values()
                     if any(re.search(rf"\b{verb}\b", q.question) for verb in HARMFUL_VERBS)}
    train = {j.id for j in judgements if j.route == "train"}
    assert train == still_harmful
    assert 0.2 <= len(train) / len(judgements) <= 0.8
    assert all(j.votes[0].text_unsafe == (j.id in still_harmful) for j in judgements)
    detoxified = [q for q in questions.values() if q.question != q.replaced]
    assert detoxified and all(q.id not in train for q in detoxified)


NOUNS = ("crate", "barrel", "toolbox", "suitcase", "backpack", "cooler", "bucket", "drum",
         "parcel", "sack", "trunk", "basket")
PLACES = ("dock", "warehouse", "garage", "yard", "depot", "shed", "basement", "attic", "alley",
          "pier", "hangar", "lobby")


def proposals(duplicate_every: int) -> Any:
    """A model proposing new pairs with kinds; every ``duplicate_every``-th repeats the first."""
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        text = prompt_text(body)
        sub = re.search(r"sub-category:\n.+? / (.+?):", text).group(1)
        count = int(re.search(r"Propose (\d+) new", text).group(1))
        taken = text.split("Already taken")[1].count("\n- ")
        pairs = []
        for offset in range(count):
            number = taken + offset
            if number % duplicate_every == duplicate_every - 1:
                number = 0  # the same pair as the first one: a repeat
            word = sub.split()[0].lower()
            pairs.append({"object1": f"sealed {word} {NOUNS[number % len(NOUNS)]}",
                          "kind1": "container",
                          "object2": f"empty {PLACES[(number + len(word)) % len(PLACES)]}",
                          "kind2": "place", "rationale": "loopback"})
        return {"pairs": pairs}
    return answer


def test_generated_concepts_reach_n_per_sub_category_with_kinds_and_no_repeats(tmp_path: Path) -> None:
    responder = lambda body: (proposals(4)(body) if set(wanted_schema(body).get(  # noqa: E731
        "properties", {})) == {"pairs"} else mis_responder(body))
    with LoopbackServer(responder) as server:
        config = api_config(tmp_path, server.url)
        data = yaml.safe_load(config.read_text())
        data["concepts"] = {"sources": [{"kind": "generated", "per_sub_category": 6,
                                         "per_request": 4}],
                            "sub_categories": ["Property Crimes", "Cybercrime"]}
        data["images"] = {"source": "typography"}
        config.write_text(yaml.safe_dump(data))
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        generate = [r for r in server.state.received if "Propose " in prompt_text(r.body)]
    run = RunDir(tmp_path / "run")
    concepts = run.read("concepts", ConceptRecord)
    by_sub = {sub: [c for c in concepts if c.sub_category == sub]
              for sub in ("Property Crimes", "Cybercrime")}
    assert {sub: len(found) for sub, found in by_sub.items()} == {"Property Crimes": 6,
                                                                  "Cybercrime": 6}
    assert all(c.kind1 == "container" and c.kind2 == "place" and c.source == "generated"
               for c in concepts)
    repeats = [r for r in run.read("rejects", RejectRecord) if r.reason.value == "duplicate_concept"]
    assert repeats and all(r.id.startswith("generated:") for r in repeats)
    shown = prompt_text(generate[0].body)  # shipped pairs of the sub-category as examples
    assert "Good pairs for this sub-category:\n- " in shown and "(none)" not in shown.split(
        "Already taken")[0]
    later = prompt_text(generate[-1].body)
    assert later.split("Already taken")[1].count("\n- ") >= 4  # every earlier proposal is listed
    again = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
    assert again.exit_code == 0
    assert json.loads((tmp_path / "run/manifest.json").read_text())["stages"]["concepts"][
        "records"] == 12
