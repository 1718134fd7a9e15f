"""Reading and editing finished runs as a reviewer's decisions see them: split members, exported
ids, and a judged sample turned into a tie."""

from __future__ import annotations

import json
from pathlib import Path

from mis_data.core.records import JudgementRecord, RejectReason, RejectRecord, Vote
from mis_data.core.rundir import RunDir


def split_members(run: Path) -> dict[str, str]:
    """sample id -> split, from the split manifest."""
    return json.loads((run / "splits" / "manifest.json").read_text(encoding="utf-8"))["ids"]


def exported_ids(run: Path) -> set[str]:
    id_map = json.loads((run / "export" / "mis" / "id_map.json").read_text(encoding="utf-8"))
    return {sample for numbers in id_map.values() for sample in numbers.values()}


def make_tie(run_path: Path, sample: str) -> list[Vote]:
    """Turn a judged sample into a tie, as two disagreeing judges leave it: no judgement, a
    ``judge_tie`` reject and a review-queue item with both votes."""
    lines = (run_path / "judgements.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["id"] != sample]
    judged = JudgementRecord.model_validate_json(next(line for line in lines
                                                      if json.loads(line)["id"] == sample))
    (run_path / "judgements.jsonl").write_text("".join(kept), encoding="utf-8")
    first = judged.votes[0]
    votes = [first.model_copy(update={"judge": "judge-a", "route": "easy"}),
             first.model_copy(update={"judge": "judge-b", "route": "hard"})]
    with RunDir(run_path) as run:
        run.reject(RejectRecord(stage="judgements", id=sample, reason=RejectReason.judge_tie,
                                detail="judges split evenly: easy, hard",
                                sub_category=judged.sub_category))
        queue_item = {"id": sample, "question": "q", "votes": [v.model_dump() for v in votes]}
    with open(run_path / "review_queue.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(queue_item) + "\n")
    return votes

