"""The one stage contract: per-item and whole-file stages behind one runner, one stage list."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from mis_data.core.ids import parent_id
from mis_data.core.records import STEP_NAMES, LabelRecord, RejectReason, RejectRecord, Step
from mis_data.core.rundir import RunDir
from mis_data.stages import STAGES
from mis_data.stages.base import (
    BuildContext,
    Decision,
    Outcome,
    Rejection,
    SideRecord,
    Stage,
    WholeStage,
    WorkItem,
    run_stage,
)
from tests.support.stage_context import bare_context


class Note(BaseModel):
    id: str
    text: str


def label(record_id: str) -> LabelRecord:
    return LabelRecord(id=record_id, text="The first image shows a thing.", model="m",
                       prompt_sha256="x")


class QuestionsStage(Stage):
    """Two records per item, one rejected sibling, one side record; item ``b`` fails once."""

    name = "labels"
    failures = {"b": 1}

    def inputs(self) -> Sequence[WorkItem]:
        return [WorkItem(item, None, None) for item in ("a", "b")]

    def item_of(self, record_id: str) -> str:
        return parent_id(record_id)

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        if self.failures.get(item.id):
            self.failures[item.id] -= 1
            return Rejection(RejectReason.api_error, "server down")
        return [label(f"{item.id}-1"), label(f"{item.id}-2"),
                Rejection(RejectReason.object_leak, "names it", id=f"{item.id}-3"),
                SideRecord("notes", Note(id=item.id, text="seen"))]


class CountingWhole(WholeStage):
    name = "real"
    decisions = 0

    async def decide(self) -> Decision:
        type(self).decisions += 1
        return Decision(records=[label("z")],
                        rejects=[RejectRecord(stage=self.name, id="y", reason=RejectReason.bad_image)])


def context(tmp_path: Path) -> BuildContext:
    return bare_context(tmp_path)


def test_every_step_has_one_stage_class_named_after_it() -> None:
    assert [name for name in STAGES if name in STEP_NAMES] == list(Step)
    assert [STAGES[step].name for step in Step] == list(STEP_NAMES)
    # a stage beyond the steps (rewrites) runs after the step it names
    extra = [name for name in STAGES if name not in STEP_NAMES]
    assert all(STAGES[name].after in STEP_NAMES for name in extra)


def test_per_item_stage_writes_records_rejects_and_side_records_then_resumes(tmp_path: Path) -> None:
    QuestionsStage.failures = {"b": 1}
    ctx = context(tmp_path)
    first = asyncio.run(run_stage(QuestionsStage(ctx)))
    assert first.kept == 2 and first.dropped == {"object_leak": 1, "api_error": 1}
    ctx.run.close()
    run = RunDir(tmp_path)
    assert {r.id for r in run.rejects()} == {"a-3", "b"}
    ctx = context(tmp_path)
    second = asyncio.run(run_stage(QuestionsStage(ctx)))
    assert second.pending == 1 and second.kept == 2  # only b, the retryable failure, again
    ctx.run.close()
    run = RunDir(tmp_path)
    assert sorted(run.output_ids("labels")) == ["a-1", "a-2", "b-1", "b-2"]
    assert {r.id for r in run.rejects()} == {"a-3", "b-3"}  # b's api_error is superseded
    assert [n.id for n in run.read("notes", Note)] == ["a", "b"]
    ctx = context(tmp_path)
    assert asyncio.run(run_stage(QuestionsStage(ctx))).already_done


def test_whole_stage_is_decided_once_and_written_atomically(tmp_path: Path) -> None:
    CountingWhole.decisions = 0
    ctx = context(tmp_path)
    stats = asyncio.run(run_stage(CountingWhole(ctx)))
    assert stats.kept == 1 and stats.dropped == {"bad_image": 1}
    assert asyncio.run(run_stage(CountingWhole(context(tmp_path)))).already_done
    assert CountingWhole.decisions == 1
    assert [r.id for r in RunDir(tmp_path).read("real", LabelRecord)] == ["z"]


def test_parent_ids_are_hierarchical() -> None:
    assert parent_id("abc-2") == "abc" and parent_id("abc.1") == "abc"
    assert parent_id("abc") == "abc" and parent_id("abc.real") == "abc.real"
