"""Scan an offline build's text the way a reader would (issue #32): off-topic labels, twin answers
that do not answer their question, questions that make no sense, hard items that lost the harm.

    python scripts/scan_demo_text.py RUN_DIR [--sample 50]

Every check is mechanical and reads the current prompt files, so the same definitions can be run
on a build made before and after a change:

- **off-topic label** (a seeded sample of ``--sample`` labels): the question's act group is the
  help group of the template its harmful draft was written from (the sub-category's fallback
  group when none is found); a label is off-topic when one of its advice sentences (a harm or
  safe line of labels.yaml) belongs to another group or sub-category, or is tied with ``fits``
  to acts whose words neither the act nor the objects contain.
- **twin not answering**: the answer does not name every object of the twin, or does not take up
  what the question asks (for a request, its act verbatim; for an ordinary question, the cue of
  its kind: "used", "look after", "fact", "weekend", "together").
- **nonsense question**: a harmful draft uses an object where the frames of instructions.yaml
  say its kind makes no sense ("hooked on" a structure) or it lacks what the act needs of it
  (``needs``: filming with something that has no camera, stealing the car "using" it).
- **hard item that lost the harm**: a hard-split question whose detox replaced a verb with a
  paraphrase that drops the act ("threaten" -> "warn", "intimidate" -> "approach", "scare" ->
  "surprise", "mock" -> "talk about").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from mis_data.models.offline.detox import DetoxRules
from mis_data.models.offline.grammar import definite, stable_int
from mis_data.models.offline.instructions import InstructionWriter, named_fillers
from mis_data.models.offline.judges import JudgeRules
from mis_data.models.offline.labels import about_text, help_groups
from mis_data.models.offline.templates import TemplateBook, frame_violations
from mis_data.models.offline.twins import question_kind

PROMPTS = Path(__file__).resolve().parent.parent / "prompts" / "offline"
LOSSY = ('-> "warn"', '-> "approach"', '-> "surprise"', '-> "talk about"')
CUES = {"use": "used", "care": "look after", "fact": "fact", "weekend": "weekend",
        "together": "together"}


def load(name: str) -> Any:
    """A prompt data file of the offline backend."""
    return yaml.safe_load((PROMPTS / name).read_text(encoding="utf-8"))


def rows(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (none when it is absent)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def concept_facts(concept: dict[str, Any]) -> dict[str, Any]:
    """The facts the instruction writer needs to find a draft's template."""
    facts = {"concept_id": concept["id"], "sub_category": concept["sub_category"]}
    for slot in range(1, 5):
        if concept.get(f"object{slot}"):
            facts[f"object{slot}"] = concept[f"object{slot}"]
            facts[f"kind{slot}"] = concept[f"kind{slot}"]
    return facts


def main() -> int:
    """Print the four scans of one run folder."""
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--sample", type=int, default=50)
    args = parser.parse_args()
    run = args.run_dir
    book = TemplateBook(load("instructions.yaml"))
    writer = InstructionWriter(book, DetoxRules(load("detox_rules.yaml")),
                               JudgeRules(load("judge_rules.yaml")), 0)
    labels_data = load("labels.yaml")
    groups = help_groups(labels_data)
    concepts = {c["id"]: c for c in rows(run / "concepts.jsonl")}
    instructions = {i["id"]: i for i in rows(run / "instructions.jsonl")}

    labels = sorted(rows(run / "labels.jsonl"), key=lambda lab: stable_int("scan", lab["id"]))
    sample = labels[:args.sample]
    off_topic = []
    for label in sample:
        instruction = instructions[label["id"]]
        facts = concept_facts(concepts[instruction["concept_id"]])
        draft = writer.find(facts, instruction["harmful"])
        sub = facts["sub_category"]
        if draft is not None:
            act = draft.act(*named_fillers(book, facts))
            group = draft.template.help
        else:
            act, group = instruction["harmful"], labels_data["sub_categories"][sub]["fallback_help"]
        about = about_text(act, facts)
        bad = [f"{key[0]}/{key[1]}: {line.text[:70]}"
               for key, help_group in groups.items() for line in help_group.lines()
               if line.text in label["text"]
               and (key != (sub, group) or not line.fit(about))]
        if bad:
            off_topic.append((label["id"], act, bad))
    print(f"off-topic labels: {len(off_topic)} of {len(sample)} sampled "
          f"({len(labels)} labels in the run)")
    for item in off_topic[:12]:
        print(f"  {item[0]} act: {item[1]}")
        for line in item[2]:
            print(f"      {line}")

    twins = rows(run / "twins.jsonl")
    twin_data = load("twins.yaml")
    missing = []
    for twin in twins:
        count = sum(1 for s in range(1, 5) if twin.get(f"object{s}"))
        names = [definite(twin[f"object{s}"]) for s in range(1, count + 1)]
        kind, act = question_kind(twin_data, twin["question"], count, book.openers, names)
        answer = twin["answer"].casefold()
        unnamed = [n for n in names if n.casefold() not in answer]
        cue = act if kind == "how_to" else CUES.get(kind, "")
        if unnamed or (cue and cue.casefold() not in answer):
            missing.append((twin["id"], kind, unnamed, cue))
    print(f"twin answers not naming the objects or not taking up the question: "
          f"{len(missing)} of {len(twins)}")
    for item in missing[:6]:
        print(f"  {item[0]} ({item[1]}): unnamed {item[2]}; question asks: {item[3][:80]}")

    nonsense = []
    for instruction in instructions.values():
        concept = concepts[instruction["concept_id"]]
        objects = {concept[f"object{s}"]: concept[f"kind{s}"] for s in range(1, 5)
                   if concept.get(f"object{s}")}
        found = frame_violations(book.frames, instruction["harmful"], objects, book.tags_of)
        if found:
            nonsense.append((instruction["id"], instruction["harmful"], found))
    print(f"questions flagged by the frames (an object's kind, or what the act needs of it): "
          f"{len(nonsense)} of {len(instructions)}")
    for item in nonsense[:8]:
        print(f"  {item[0]}: {item[1]}\n      {item[2][0]}")

    hard = rows(run / "splits" / "hard.jsonl")
    lost = [(item["id"], instructions[item["id"]]["question"]) for item in hard
            if any(mark in instructions[item["id"]]["detox_reason"] for mark in LOSSY)]
    print(f"hard items whose detox dropped the act: {len(lost)} of {len(hard)}")
    for item in lost[:6]:
        print(f"  {item[0]}: {item[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
