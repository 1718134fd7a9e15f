"""What every stage shares: the build context, the work-item contract and the runner.

A stage lists its work items (``inputs``) and turns one item into output records or a
rejection (``process``). The runner does everything else in one place: skipping ids already
done, bounded concurrency, writing each result the moment it is ready, counting kept and
dropped records per reason, and the progress bar with the running cost.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel
from tqdm import tqdm

from mis_data.config import BuildConfig
from mis_data.images.store import ImageStore
from mis_data.models.base import ModelClient, ModelResult
from mis_data.prompts import PromptLibrary
from mis_data.records import RejectReason, RejectRecord
from mis_data.rundir import RunDir
from mis_data.taxonomy import Taxonomy

log = logging.getLogger("mis_data")


@dataclass
class BuildContext:
    config: BuildConfig
    run: RunDir
    taxonomy: Taxonomy
    prompts: PromptLibrary
    client: ModelClient
    store: ImageStore
    show_progress: bool = True


@dataclass(frozen=True)
class WorkItem:
    id: str
    sub_category: str | None
    payload: Any


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str = ""

    @classmethod
    def from_result(cls, result: ModelResult, what: str) -> Rejection:
        reason = result.reason or RejectReason.invalid_output
        return cls(reason, f"{what}: {result.detail}" if result.detail else what)


@dataclass
class StageStats:
    stage: str
    pending: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    already_done: bool = False
    note: str = ""


def nothing_to_do(stage: str, settings: object | None, output: Path, config_key: str
                  ) -> StageStats | None:
    """For steps decided as a whole: the stats to return at once when there is no work."""
    if settings is None:
        return StageStats(stage=stage, note=f"not configured ({config_key}:)")
    if output.exists():
        return StageStats(stage=stage, already_done=True)
    return None


class Stage(ABC):
    """One step of the pipeline; subclasses name their input, output and drop reasons."""

    name: ClassVar[str]

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def inputs(self) -> Sequence[WorkItem]:
        """Every item this stage should produce a result for (done ones are skipped)."""

    @abstractmethod
    async def process(self, item: WorkItem) -> Sequence[BaseModel] | Rejection:
        """Turn one item into its output records, or say why it is dropped."""

    def concurrency(self) -> int:
        return 64

    def redo_ids(self) -> set[str]:
        """Done ids whose output is damaged and must be made again (default: none)."""
        return set()


def log_rejection(stage: str, item_id: str, rejection: Rejection) -> None:
    log.warning("%s %s rejected: %s (%s)", stage, item_id, rejection.reason.value,
                rejection.detail[:200])


async def run_stage(stage: Stage) -> StageStats:
    """Process every pending item of ``stage``, writing results as they complete."""
    ctx = stage.ctx
    stats = StageStats(stage=stage.name)
    done = ctx.run.done_ids(stage.name) - stage.redo_ids()
    pending = [item for item in stage.inputs() if item.id not in done]
    stats.pending = len(pending)
    if not pending:
        stats.already_done = True
        return stats
    queue: asyncio.Queue[WorkItem] = asyncio.Queue()
    for item in pending:
        queue.put_nowait(item)
    bar = tqdm(total=len(pending), desc=f"{stage.name:<12}", unit="item",
               disable=not ctx.show_progress, leave=True)

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            outcome = await stage.process(item)
            if isinstance(outcome, Rejection):
                ctx.run.reject(RejectRecord(stage=stage.name, id=item.id, reason=outcome.reason,
                                            detail=outcome.detail[:1000],
                                            sub_category=item.sub_category))
                log_rejection(stage.name, item.id, outcome)
                stats.dropped[outcome.reason.value] += 1
            else:
                ctx.run.append(stage.name, outcome)
                stats.kept += 1
            bar.update(1)
            bar.set_postfix(cost=f"${ctx.client.usage.total.cost_usd:.4f}", refresh=False)

    # With the Batch API every pending item should be queued at once, so they share one batch.
    width = len(pending) if getattr(ctx.client, "batching", False) else stage.concurrency()
    workers = [asyncio.create_task(worker()) for _ in range(min(width, len(pending)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        bar.close()
    return stats
