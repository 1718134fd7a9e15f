"""Stages that stream into each other: an item moves on as soon as its stage is done, a
whole-file stage waits for everything before it, and an error stops the whole stream."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from mis_data.core.rundir import RunDir
from mis_data.stages.base import (
    BuildContext,
    Decision,
    Outcome,
    Rejection,
    Stage,
    WholeStage,
    WorkItem,
    run_stream,
)
from tests.support.api import KEY, api_config
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer
from tests.support.stage_context import bare_context

ITEMS = [f"i{n:02d}" for n in range(12)]


class Row(BaseModel):
    id: str
    at: float


def context(tmp_path: Path) -> BuildContext:
    return bare_context(tmp_path)


class Slow(Stage):
    """The upstream: every item takes a while, two at a time."""

    name = "first"
    seconds = 0.03

    def inputs(self) -> Sequence[WorkItem]:
        return [WorkItem(item, None, None) for item in ITEMS]

    def concurrency(self) -> int:
        return 2

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        await asyncio.sleep(self.seconds)
        return [Row(id=item.id, at=time.monotonic())]


class Follows(Stage):
    """The downstream: one item per upstream record; fails on ``fail_on`` when set."""

    name = "second"
    fail_on: ClassVar[str | None] = None

    def inputs(self) -> Sequence[WorkItem]:
        return [WorkItem(row.id, None, row) for row in
                self.ctx.run.records("first", Row).values()]

    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        if item.id == self.fail_on:
            raise RuntimeError(f"{item.id} broke")
        return [Row(id=item.id, at=time.monotonic())]


class Counts(WholeStage):
    """A whole-file stage between streams: it must see every record of the stream before it."""

    name = "whole"
    seen: ClassVar[list[int]] = []

    async def decide(self) -> Decision:
        type(self).seen.append(len(self.ctx.run.records("second", Row)))
        return Decision(records=[Row(id="all", at=time.monotonic())])


def rows(run: RunDir, stage: str) -> dict[str, Row]:
    return RunDir(run.path).records(stage, Row)


def test_an_item_moves_on_before_its_stage_has_finished(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    Follows.fail_on = None
    Counts.seen = []
    stats = asyncio.run(run_stream([Slow(ctx), Follows(ctx), Counts(ctx)]))
    ctx.run.close()
    first, second = rows(ctx.run, "first"), rows(ctx.run, "second")
    assert sorted(first) == sorted(second) == ITEMS
    assert [s.stage for s in stats] == ["first", "second", "whole"]
    assert [s.kept for s in stats] == [12, 12, 1]
    # the second stage worked on early items while the first was still on late ones
    assert min(row.at for row in second.values()) < max(row.at for row in first.values())
    assert Counts.seen == [12]  # the whole-file stage saw all of the stream before it


def test_an_error_stops_the_stream_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    Follows.fail_on = "i03"
    with pytest.raises(RuntimeError, match="i03 broke"):
        asyncio.run(run_stream([Slow(ctx), Follows(ctx)]))
    ctx.run.close()
    assert len(rows(ctx.run, "first")) < len(ITEMS)  # the upstream was stopped too
    Follows.fail_on = None
    ctx = context(tmp_path)
    stats = asyncio.run(run_stream([Slow(ctx), Follows(ctx)]))
    ctx.run.close()
    assert sorted(rows(ctx.run, "second")) == ITEMS
    assert stats[0].pending + len(rows(ctx.run, "first")) - stats[0].kept == len(ITEMS)


def test_a_finished_stream_is_already_done_on_a_rerun(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    Follows.fail_on = None
    asyncio.run(run_stream([Slow(ctx), Follows(ctx)]))
    ctx.run.close()
    ctx = context(tmp_path)
    stats = asyncio.run(run_stream([Slow(ctx), Follows(ctx)]))
    assert all(s.already_done for s in stats)


def schema_name(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("response_format"), dict):
        return str(body["response_format"].get("json_schema", {}).get("name", ""))
    return ""


def test_a_real_build_labels_samples_while_others_are_still_judged(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    """Over the loopback server (each answer takes 50 ms): the labeller's first request comes
    before the judges' last, and image generation starts before the last detox request."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(latency=0.05) as server:
        config = api_config(tmp_path, server.url, per_sub=2)
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        received = list(server.state.received)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for request in received:
        name = schema_name(request.body) or request.path
        first.setdefault(name, request.at)
        last[name] = request.at
    assert first["LabelAnswer"] < last["ImageVerdict"]
    assert first["/v1/images/generations"] < last["DetoxifiedQuestion"]
    assert os.environ["MIS_LOOPBACK_KEY"] == KEY
