"""What every stage shares: the build context, the two stage contracts and the one runner.

A stage is one of two kinds behind one runner (``run_stage``):

* **per item** (``Stage``): it lists its work items (``inputs``) and turns one item into its
  outcomes (``process``): output records, rejections and side records (the judges' review
  queue). Items are processed concurrently and each result is written the moment it is ready.
* **whole file** (``WholeStage``): it decides everything at once (``decide``) because the
  answer for one record depends on the others (duplicates, quotas, seeded picks).

The runner does everything else in one place: skipping what is done, writing records and
rejects, counting kept and dropped records per reason, the progress bar with the running cost,
and the atomic write of a whole-file stage.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import groupby, pairwise
from typing import Any, ClassVar, Protocol, cast

from pydantic import BaseModel
from tqdm import tqdm

from mis_data.core.config import BuildConfig
from mis_data.core.ids import Shard
from mis_data.core.lock import FolderLock
from mis_data.core.pool import Mapper, ThreadMapper, gather_all, stop_all
from mis_data.core.prompts import PromptLibrary
from mis_data.core.records import (
    DECLINED_REASONS,
    RETRYABLE_REASONS,
    ConceptRecord,
    RejectReason,
    RejectRecord,
)
from mis_data.core.rundir import RunDir, write_text_atomic
from mis_data.core.taxonomy import Kind, Taxonomy
from mis_data.core.view import RunView
from mis_data.images.store import ImageStore
from mis_data.models.base import (
    ChatMessage,
    Check,
    ImagePart,
    ModelClient,
    ModelResult,
    StructuredRequest,
    TextPart,
)

log = logging.getLogger("mis_data")


@dataclass
class BuildContext:
    """Everything a stage needs for one build: the config, the run folder, the taxonomy, the prompts, the
    model client and the image store. ``kinds`` holds the taxonomy's kinds by name; ``lock`` is set by
    ``prepare`` and released when the build ends."""
    config: BuildConfig
    run: RunDir
    taxonomy: Taxonomy
    prompts: PromptLibrary
    client: ModelClient
    store: ImageStore
    show_progress: bool = True
    kinds: dict[str, Kind] = field(default_factory=dict)
    lock: FolderLock | None = None  # the run folder's, held from ``prepare`` to the build's end
    shard: Shard | None = None  # the pairs this build works on (``--shard``); None: all of them
    cpu: Mapper = field(default_factory=ThreadMapper)  # where CPU work runs (pHash, exports)
    remote: ItemRunner | None = None  # where ``process`` runs when not here (``executor: ray``)

    @property
    def view(self) -> RunView:
        """The run's records, joined by sample (read once per build by ``RunDir``)."""
        return RunView(self.run)


class PlanAssumptions(Protocol):
    """What a task's plan estimate reads of the plan's assumptions (``plan.Assumptions``)."""

    question_chars: int
    reason_chars: int
    refine_rate: float


@dataclass
class PlanProbe:
    """What a task's plan estimate sees: the build's context (no run folder, no client), every
    concept the plan counts, one of them (``concept``; None for a reply length), a question of
    the assumed length, the assumptions, a safety answer's assumed length, and a memo the
    estimates of one plan share (facts computed once for all concepts)."""

    ctx: BuildContext
    assumptions: PlanAssumptions
    label_chars: int
    concepts: Sequence[ConceptRecord] = ()
    concept: ConceptRecord | None = None
    question: str = ""
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> ConceptRecord:
        """The concept a prompt is rendered for (set by the plan for every prompt estimate)."""
        assert self.concept is not None, "a prompt estimate needs a concept"
        return self.concept


@dataclass(frozen=True)
class ModelTask:
    """One kind of request a stage sends to a model, declared once by the stage that sends it.

    The name keys the cache, the usage, the refusal rates and the offline backend's answer; the
    plan reads the rest (prompt, reply schema, the prompt as it will be rendered, the expected
    reply length) from here, so a new stage's requests are planned without the plan knowing it.
    ``reply_of`` gives the reply model when it depends on the build (the taxonomy's
    sub-categories, the images per sample, the label style).
    """

    name: str
    role: str  # text | vision | image | judge (a judge's request names its index: judge:<i>)
    prompt: str
    reply: type[BaseModel] | None = None
    reply_of: Callable[[BuildContext], type[BaseModel]] | None = None
    plan_text: Callable[[PlanProbe], str] | None = None
    reply_chars: Callable[[PlanProbe], int] | None = None
    # The offline backend's answer (from the request's facts) for a task its rules do not know.
    offline: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Requests a build sends, from the plan's expected counts (``concepts``, ``questions``,
    # ``judged``, ``train``, ``labelled`` ...): how a new stage's task gets its plan row. The
    # built-in steps' counts are the plan's own flow.
    plan_requests: Callable[[dict[str, int]], int] | None = None

    def reply_model(self, ctx: BuildContext) -> type[BaseModel] | None:
        """The reply model for this build."""
        return self.reply_of(ctx) if self.reply_of is not None else self.reply


def model_request(ctx: BuildContext, task: ModelTask, *, stage: str, item_id: str,
                  values: dict[str, Any], images: Sequence[str] = (),
                  facts: dict[str, Any] | None = None, check: Check | None = None,
                  sub_category: str | None = None, role: str | None = None,
                  prompt: str | None = None, response_model: type[BaseModel] | None = None
                  ) -> StructuredRequest:
    """One user turn of a declared task: the images (by sha256), then the prompt file filled
    with ``values``; the file's answer to a refusal rides along. ``facts`` (default:
    ``values``) feed the offline backend only. ``role``, ``prompt`` and ``response_model``
    override the task's for a request that differs (a judge's index, a kind's own prompt)."""
    text = ctx.prompts.get(prompt or task.prompt)
    reply = response_model or task.reply_model(ctx)
    assert reply is not None, f"task {task.name} declares no reply model"
    parts: tuple[ImagePart | TextPart, ...] = (*(ImagePart(sha256) for sha256 in images),
                                               TextPart(text.render(**values)))
    return StructuredRequest(task=task.name, role=role or task.role, item_id=item_id, stage=stage,
                             messages=[ChatMessage("user", parts)], response_model=reply,
                             facts=values if facts is None else facts, check=check,
                             sub_category=sub_category, reframe=text.reframe(**values))


@dataclass(frozen=True)
class WorkItem:
    """One unit of a per-item stage's work. ``id`` is what the runner skips when done and names in a reject;
    ``payload`` is whatever ``process`` needs (a record, a tuple of records)."""
    id: str
    sub_category: str | None
    payload: Any


@dataclass(frozen=True)
class Rejection:
    """Why a record is dropped. ``id`` names it when it is not the whole item (one question
    of a pair); the runner fills in the item's id otherwise."""

    reason: RejectReason
    detail: str = ""
    id: str | None = None
    models: tuple[str, ...] = ()  # the models that declined it (refused or blocked)

    @classmethod
    def from_result(cls, result: ModelResult, what: str, id: str | None = None) -> Rejection:
        """The rejection of a failed model reply: its reason (``invalid_output`` when the result names none),
        ``what`` failed with the result's detail, and the models that declined it."""
        reason = result.reason or RejectReason.invalid_output
        return cls(reason, f"{what}: {result.detail}" if result.detail else what, id=id,
                   models=tuple(result.declined_by))


@dataclass(frozen=True)
class SideRecord:
    """A record for another file of the run folder (e.g. ``review_queue``), not a stage output."""

    file: str
    record: BaseModel


Outcome = BaseModel | Rejection | SideRecord


@dataclass
class StageStats:
    """What the runner reports for one stage: items pending, records kept, drops counted by reason, whether
    everything was already done, and a note for the summary."""
    stage: str
    pending: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    already_done: bool = False
    note: str = ""


class Stage(ABC):
    """One per-item step of the pipeline; subclasses name their input, output and drop reasons."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[ModelTask, ...]] = ()  # the model requests it sends
    after: ClassVar[str | None] = None  # for a stage outside ``records.Step``: the step it follows

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def inputs(self) -> Sequence[WorkItem]:
        """Every item this stage should produce a result for (done ones are skipped)."""

    @abstractmethod
    async def process(self, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """Turn one item into its outcomes, or say why the whole item is dropped."""

    def concurrency(self) -> int:
        """How many items run at once when requests are not batched; override to go slower."""
        return 64

    def redo_ids(self) -> set[str]:
        """Done items whose output is damaged and must be made again (default: none)."""
        return set()

    def item_of(self, record_id: str) -> str:
        """The work item a record or reject id belongs to (default: the same id)."""
        return record_id

    def done_items(self) -> set[str]:
        """Items with a record, or with a final reject: not a passing fault, and not declined
        by models only when a fallback model of the config has not been asked yet."""
        run = self.ctx.run

        def untried(models: list[str] | None) -> bool:
            return bool(models) and self.ctx.config.models.untried_fallback(models or [])

        done = {self.item_of(record_id) for record_id in run.output_ids(self.name)}
        done |= {self.item_of(reject.id) for reject in run.rejects()
                 if reject.stage == self.name and reject.reason not in RETRYABLE_REASONS
                 and not (reject.reason in DECLINED_REASONS and untried(reject.models))}
        return done - self.redo_ids()


@dataclass
class Decision:
    """What a whole-file stage decided: its records, its rejects and any extra files."""

    records: list[BaseModel] = field(default_factory=list)
    rejects: list[RejectRecord] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    considered: int = 0
    note: str = ""


class WholeStage(ABC):
    """A step decided as a whole and written once (concepts, dedup, real, general)."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[ModelTask, ...]] = ()  # the model requests it sends
    after: ClassVar[str | None] = None  # for a stage outside ``records.Step``: the step it follows
    # Recomputed on every run instead of skipped once written (cheap filters such as dedup).
    recompute: ClassVar[bool] = False
    # False for a filter whose only output is rejects (and extra files).
    writes_records: ClassVar[bool] = True

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx

    def idle_note(self) -> str | None:
        """Why the stage has nothing to do in this config (e.g. ``not configured``), else None."""
        return None

    @abstractmethod
    async def decide(self) -> Decision:
        """Every record and reject of the stage, in the order they should be written."""


def log_rejection(stage: str, item_id: str, rejection: Rejection) -> None:
    """Log one drop as a warning, with its detail cut to 200 characters so a long model reply does not flood
    the log."""
    log.warning("%s %s rejected: %s (%s)", stage, item_id, rejection.reason.value,
                rejection.detail[:200])


def record_decided_rejects(run: RunDir, stage: str, rejects: Sequence[RejectRecord],
                           same: Callable[[RejectRecord], Hashable] = lambda r: (r.id, r.reason)
                           ) -> int:
    """The reject path of a step that decides on all its items at once (a whole-file stage, a
    top-up round, decontamination, reviewers' drops): each reject is written and named in one
    line, except one the log already holds the ``same`` way, so a step that decides again on
    every run says each drop once. Returns how many were written."""
    current = {same(reject) for reject in run.rejects() if reject.stage == stage}
    written = 0
    for reject in rejects:
        if same(reject) in current:
            continue
        run.reject(reject)
        log_rejection(stage, reject.id, Rejection(reject.reason, reject.detail))
        written += 1
    return written


def write_reject(ctx: BuildContext, stage: str, rejection: Rejection, item: WorkItem,
                 stats: StageStats) -> None:
    """Write one rejection of an item to the rejects file (its own ``id`` or the item's) and count it in
    ``stats``."""
    record_id = rejection.id or item.id
    ctx.run.reject(RejectRecord(stage=stage, id=record_id, reason=rejection.reason,
                                detail=rejection.detail[:1000], sub_category=item.sub_category,
                                models=list(rejection.models) or None))
    log_rejection(stage, record_id, rejection)
    stats.dropped[rejection.reason.value] += 1


def write_outcomes(ctx: BuildContext, stage: str, item: WorkItem,
                   outcomes: Sequence[Outcome] | Rejection, stats: StageStats) -> None:
    """Everything one item produced (records, rejects, side records) as one group: a resume
    finds it whole in every file, or redoes the item."""
    if isinstance(outcomes, Rejection):
        outcomes = [outcomes]
    records = [o for o in outcomes if not isinstance(o, Rejection | SideRecord)]
    with ctx.run.group():
        if records:
            ctx.run.append(stage, records)
            stats.kept += len(records)
        for outcome in outcomes:
            if isinstance(outcome, Rejection):
                write_reject(ctx, stage, outcome, item, stats)
            elif isinstance(outcome, SideRecord):
                ctx.run.append(outcome.file, [outcome.record])


class ItemRunner(Protocol):
    """Where per-item stages do their work when it is not this process (``executor: ray``):
    the runner still decides what to do and writes every outcome; only ``process`` moves."""

    def new_stream(self) -> None:
        """A stream starts: the stages' inputs of the run folder have moved on since the last."""

    async def process(self, stage: Stage, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """``stage.process(item)``, done elsewhere."""

    def close(self) -> None:
        """Stop the workers (the build ended)."""


@dataclass
class Flow:
    """How a running per-item stage tells the stages after it that it moved on: ``changed`` is
    set after each item it or a stage before it wrote, ``finished`` once it has nothing left
    (also on failure). ``later`` is the next stage's flow."""

    changed: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False
    later: Flow | None = None

    def touch(self) -> None:
        """An item was written: every later stage of the stream may have new inputs, not only
        the next one (the rewrites take labelled samples while the twins are still drawn)."""
        flow: Flow | None = self
        while flow is not None:
            flow.changed.set()
            flow = flow.later

    def finish(self) -> None:
        """Nothing more comes: the next stage takes its last inputs and ends."""
        self.finished = True
        self.changed.set()


# How long a following stage lets its upstream run before it looks for new inputs again: its
# ``inputs`` joins the run's records, so looking after every single item would cost more than
# it gains; a few items at a time keep the servers busy just as well.
FOLLOW_SECONDS = 0.05


async def run_items(stage: Stage, upstream: Flow | None = None,
                    flow: Flow | None = None) -> StageStats:
    """Process every pending item of a per-item stage, writing results as they complete.

    With an ``upstream`` flow the stage runs while the stage before it is still running: it
    takes each item as soon as its inputs are written (a pair's questions go to the judges
    while other pairs are still being detoxified) and looks for new ones whenever the upstream
    writes, until the upstream has finished and one last look finds no more. ``flow`` tells
    the stage after this one the same about this one. Items are still decided one by one from
    what the run folder holds, so the records are the ones a stage-by-stage build writes (in
    completion order, which every reader sorts).
    """
    ctx = stage.ctx
    stats = StageStats(stage=stage.name)
    seen = stage.done_items()
    # With the Batch API every queued item should go out at once, so they share one batch.
    batching = getattr(ctx.client, "batching", False)
    width = max(1, stage.concurrency())
    queue: asyncio.Queue[WorkItem | None] = asyncio.Queue()
    workers: list[asyncio.Task[None]] = []
    bars: list[tqdm[Any]] = []  # made with the first item: a stage with nothing to do shows none

    def take_new() -> None:
        new = [item for item in stage.inputs() if item.id not in seen
               and (ctx.shard is None or ctx.shard.holds(item.id))]
        if not new:
            return
        seen.update(item.id for item in new)
        for item in new:
            queue.put_nowait(item)
        stats.pending += len(new)
        if not bars:
            bars.append(tqdm(total=0, desc=f"{stage.name:<12}", unit="item",
                             disable=not ctx.show_progress, leave=True))
        bars[0].total += len(new)
        bars[0].refresh()
        count = len(new) if batching else min(len(new), width - len(workers))
        workers.extend(asyncio.create_task(worker()) for _ in range(max(0, count)))

    async def worker() -> None:
        while (item := await queue.get()) is not None:
            outcomes = await (stage.process(item) if ctx.remote is None
                              else ctx.remote.process(stage, item))
            write_outcomes(ctx, stage.name, item, outcomes, stats)
            bars[0].update(1)
            bars[0].set_postfix(cost=f"${ctx.client.usage.total.cost_usd:.4f}", refresh=False)
            if flow is not None:
                flow.touch()

    try:
        take_new()
        while upstream is not None and not upstream.finished:
            await until_changed(upstream, workers)
            await asyncio.sleep(FOLLOW_SECONDS)
            while queue.qsize() >= width and not upstream.finished:  # busy: look later
                await asyncio.sleep(FOLLOW_SECONDS)
                raise_failure(workers)
            take_new()
        if upstream is not None:
            take_new()  # the upstream has written everything: the last look
        stats.already_done = stats.pending == 0
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    finally:  # on an error, every worker of the stage stops with it
        await stop_all(workers)
        for bar in bars:
            bar.close()
        if flow is not None:
            flow.finish()
    return stats


async def until_changed(upstream: Flow, workers: Sequence[asyncio.Task[None]]) -> None:
    """Wait for the upstream to write, or for one of this stage's workers to fail (a worker
    ends early only by an error, which must stop the stream now, not when the upstream ends)."""
    changed = asyncio.ensure_future(upstream.changed.wait())
    try:
        await asyncio.wait([changed, *workers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        changed.cancel()
    upstream.changed.clear()
    raise_failure(workers)


def raise_failure(workers: Sequence[asyncio.Task[None]]) -> None:
    """Raise the error of the first worker that failed, if any has."""
    for task in workers:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise cast("BaseException", task.exception())


async def run_whole(stage: WholeStage) -> StageStats:
    """Decide a whole-file stage once (or on every run when it recomputes) and write it."""
    ctx = stage.ctx
    stats = StageStats(stage=stage.name)
    note = stage.idle_note()
    if note is not None:
        stats.note = note
        return stats
    if not stage.recompute and ctx.run.stage_file(stage.name).exists():
        stats.already_done = True
        return stats
    decision = await stage.decide()
    for reject in decision.rejects:
        stats.dropped[reject.reason.value] += 1
    record_decided_rejects(ctx.run, stage.name, decision.rejects)
    for name, text in decision.files.items():
        write_text_atomic(ctx.run.path / name, text)
    if stage.writes_records:
        ctx.run.write_records(stage.name, decision.records)
    stats.pending = decision.considered or len(decision.records) + len(decision.rejects)
    stats.kept = len(decision.records) if stage.writes_records else stats.pending - len(
        decision.rejects)
    stats.note = decision.note
    return stats


async def run_stage(stage: Stage | WholeStage) -> StageStats:
    """The one runner: per-item or whole-file, the same skipping, writing and counting."""
    if isinstance(stage, WholeStage):
        return await run_whole(stage)
    return await run_items(stage)


async def run_stream(stages: Sequence[Stage | WholeStage]) -> list[StageStats]:
    """Stages in order, each run of per-item stages as one stream (``run_items`` with flows):
    every stage of the run works at once, an item moving on as soon as its stage is done. A
    whole-file stage (dedup, quotas) needs all its inputs, so it waits for the stream before it
    and the next stream waits for it."""
    stats: list[StageStats] = []
    for whole, group in groupby(stages, key=lambda stage: isinstance(stage, WholeStage)):
        if whole:
            for stage in group:
                stats.append(await run_whole(cast("WholeStage", stage)))
            continue
        stream = [cast("Stage", stage) for stage in group]
        if stream[0].ctx.remote is not None:
            stream[0].ctx.remote.new_stream()
        flows = [Flow() for _ in stream]
        for flow, later in pairwise(flows):
            flow.later = later
        stats += await gather_all([
            asyncio.create_task(run_items(stage, flows[k - 1] if k else None, flows[k]))
            for k, stage in enumerate(stream)])
    return stats
