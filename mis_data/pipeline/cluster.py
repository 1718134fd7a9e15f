"""``executor: ray``: the stages' per-item work in Ray actors, their CPU work in Ray tasks.

The build itself stays in this process. It decides what each stage does next, writes every
record and reject to the run folder and keeps ``usage.json``: the run folder is the source of
truth, so resuming, the records and the exports are those of a local build. Only
``Stage.process`` moves. Each of ``ray.num_workers`` actors (``StageWorker``) holds the
existing model client, with the run folder's response cache (SQLite, shared by the workers
through the file system), and takes the items of every stage. What an item cost comes back
with its outcomes and is added to the build's meter, so the cost cap and the stats see the
whole cluster. One named actor (``ClusterLimits``) keeps every served model's concurrency and
rate limits for the whole cluster: each worker's client asks it before it sends (Ray's own
HTTP processor has neither token limits nor retries, so the client stays ours). pHash and
the exports run as Ray tasks (``RayMapper``).

Ray is an optional extra (``pip install 'mis-data[ray]'``), imported only here and only when a
config asks for it. Ray's usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` says
otherwise. On a cluster of several machines the run folder must be on a file system every
node sees, and mis-data installed on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from mis_data.core.config import BuildConfig, ConfigError, RayConfig
from mis_data.core.ids import Shard, shard_of
from mis_data.core.prompts import PromptLibrary
from mis_data.core.rundir import RunDir
from mis_data.core.taxonomy import Kind, Taxonomy
from mis_data.images.store import ImageStore
from mis_data.models import make_client
from mis_data.models.base import ModelClient, UsageMeter
from mis_data.models.limits import RateLimiter
from mis_data.stages import STAGES, TASKS
from mis_data.stages.base import BuildContext, Outcome, Rejection, Stage, WorkItem

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def ray_module() -> ModuleType:
    """Ray, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("executor: ray needs Ray: pip install 'mis-data[ray]'") from None
    return ray


def start_ray(settings: RayConfig) -> bool:
    """Connect to the cluster at ``settings.address``, or start a local Ray; True when this
    call started it (and the build should shut it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = ray_module()
    if ray.is_initialized():
        return False
    ray.init(address=settings.address, include_dashboard=False, configure_logging=False,
             log_to_driver=True)
    return True


class ClusterLimits:
    """Every served model's rate limits and every server's concurrency, for the whole cluster
    (one named actor a build; ``models.limits.SharedLimits`` is what the workers see)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self.limiters: dict[str, RateLimiter] = {}
        self.busy: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.changed: asyncio.Condition | None = None  # made in the actor's event loop

    async def admit(self, model: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """Wait until the request fits ``model``'s rates over every worker."""
        limiter = self.limiters.setdefault(model, RateLimiter(rpm, tpm, self.window))
        await limiter.acquire(tokens)

    async def enter(self, server: str, concurrency: int) -> None:
        """Wait for a free slot of ``server``, then hold it."""
        self.changed = self.changed or asyncio.Condition()
        async with self.changed:
            await self.changed.wait_for(lambda: self.busy.get(server, 0) < concurrency)
            self.busy[server] = self.busy.get(server, 0) + 1
            self.peak[server] = max(self.peak.get(server, 0), self.busy[server])

    async def leave(self, server: str) -> None:
        """Give a slot of ``server`` back."""
        self.changed = self.changed or asyncio.Condition()
        async with self.changed:
            self.busy[server] -= 1
            self.changed.notify_all()

    def peaks(self) -> dict[str, int]:
        """The most requests each server had at once (for tests and the bench)."""
        return dict(self.peak)


class RayLimits:
    """A worker's view of the ``ClusterLimits`` actor (``models.limits.SharedLimits``)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def admit(self, model: str, rpm: int | None, tpm: int | None, tokens: int) -> None:
        """See ``ClusterLimits.admit``."""
        await self.actor.admit.remote(model, rpm, tpm, tokens)

    async def enter(self, server: str, concurrency: int) -> None:
        """See ``ClusterLimits.enter``."""
        await self.actor.enter.remote(server, concurrency)

    async def leave(self, server: str) -> None:
        """See ``ClusterLimits.leave``."""
        await self.actor.leave.remote(server)


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to rebuild the build's context: the checked config, taxonomy and
    kinds, the run folder, the shard and the cost cap."""

    config: BuildConfig
    taxonomy: Taxonomy
    kinds: dict[str, Kind]
    run_path: Path
    shard: Shard | None
    max_cost: float | None


def hand_over(client: ModelClient) -> UsageMeter:
    """What the client's requests cost since the last hand-over; the client's own cost cap
    still counts it (its session adds it to what was spent before)."""
    session = getattr(client, "session", None)
    taken = client.usage.take()
    if session is not None:
        session.spent_before += taken.total.cost_usd
    return taken


class StageWorker:
    """One Ray actor: a model client with the run folder's cache, and the stages, which it
    makes again whenever a new stream starts (their inputs in the run folder moved on)."""

    def __init__(self, setup: WorkerSetup, limits: Any) -> None:
        config = setup.config
        run = RunDir(setup.run_path)
        prompts = PromptLibrary(config.prompts_dir)
        store = ImageStore(run.images_dir, config.images.max_side, config.images.max_pixels)
        client = make_client(config, prompts, store, run.cache_path, max_cost=setup.max_cost,
                             offline_answers={name: task.offline for name, task in TASKS.items()
                                              if task.offline},
                             shared=RayLimits(limits))
        self.ctx = BuildContext(config=config, run=run, taxonomy=setup.taxonomy,
                                prompts=prompts, client=client, store=store,
                                show_progress=False, kinds=setup.kinds, shard=setup.shard)
        self.stream = -1
        self.stages: dict[str, Stage] = {}

    async def process(self, stage: str, stream: int, item: WorkItem
                      ) -> tuple[Sequence[Outcome] | Rejection, UsageMeter]:
        """One item of ``stage``, and what it cost."""
        if stream != self.stream:
            self.ctx.run = RunDir(self.ctx.run.path)  # read the run folder afresh
            self.stream, self.stages = stream, {}
        if stage not in self.stages:
            made = STAGES[stage](self.ctx)
            assert isinstance(made, Stage), f"{stage} is not a per-item stage"
            self.stages[stage] = made
        outcomes = await self.stages[stage].process(item)
        return outcomes, hand_over(self.ctx.client)

    async def close(self) -> None:
        """Close the client (its HTTP connections and the cache)."""
        await self.ctx.client.aclose()


def unwrapped(error: BaseException) -> BaseException:
    """The error a worker raised, out of Ray's wrapper, so the command reports it as a local
    build would (``ServersDown``, ``BudgetExceeded`` ...)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


class RayItems:
    """The build's side of the workers (``stages.base.ItemRunner``): every item of a concept
    pair goes to the same worker (its questions share requests, such as the judges' look at
    the pair's images, which a worker's client asks once and then answers from its cache), and
    what an item cost joins the build's meter."""

    def __init__(self, ray: ModuleType, ctx: BuildContext, workers: list[Any], limits: Any,
                 started: bool) -> None:
        self.ray, self.ctx, self.workers, self.limits = ray, ctx, workers, limits
        self.started = started
        self.sent = [0] * len(workers)  # items each worker took
        self.last_peaks: dict[str, int] = {}  # the servers' peaks, kept when the build ends
        self.stream = 0

    def new_stream(self) -> None:
        """Workers make their stages again for the next stream."""
        self.stream += 1

    async def process(self, stage: Stage, item: WorkItem) -> Sequence[Outcome] | Rejection:
        """``stage.process(item)`` on the least busy worker."""
        session = getattr(self.ctx.client, "session", None)
        if session is not None:
            session.check_budget(0.0)  # the whole cluster's spending, before the next item
        index = shard_of(item.id, len(self.workers))
        self.sent[index] += 1
        try:
            outcomes, usage = await self.workers[index].process.remote(stage.name, self.stream,
                                                                         item)
        except self.ray.exceptions.RayTaskError as error:
            raise unwrapped(error) from None
        self.ctx.client.usage.merge(usage)
        return outcomes

    def peaks(self) -> dict[str, int]:
        """The most requests each server had at once, over the whole cluster."""
        return dict(self.ray.get(self.limits.peaks.remote()))

    def close(self) -> None:
        """Stop the workers and the limits actor; shut Ray down when the build started it."""
        with contextlib.suppress(Exception):  # a worker that died has nothing left to close
            self.ray.get([worker.close.remote() for worker in self.workers], timeout=30)
            self.last_peaks = self.peaks()
        for actor in (*self.workers, self.limits):
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


class RayMapper:
    """CPU work as Ray tasks, one per item, spread over the cluster's cores."""

    def __init__(self, ray: ModuleType) -> None:
        self.ray = ray

    def map(self, fn: Callable[[ItemT], ResultT], items: Sequence[ItemT]) -> list[ResultT]:
        """``fn`` of every item as a Ray task, results in the items' order."""
        if not items:
            return []
        task = self.ray.remote(num_cpus=1)(fn)
        try:
            return list(self.ray.get([task.remote(item) for item in items]))
        except self.ray.exceptions.RayTaskError as error:
            raise unwrapped(error) from None


def attach_cluster(ctx: BuildContext, max_cost: float | None) -> RayItems:
    """Start (or join) Ray for ``executor: ray`` and give ``ctx`` its workers and tasks."""
    settings = ctx.config.ray or RayConfig()
    ray = ray_module()
    started = start_ray(settings)
    name = "mis-data-limits-" + hashlib.sha256(str(ctx.run.path).encode()).hexdigest()[:16]
    limits = ray.remote(num_cpus=0)(ClusterLimits).options(
        name=name, get_if_exists=True, max_concurrency=10_000).remote()
    setup = WorkerSetup(config=ctx.config, taxonomy=ctx.taxonomy, kinds=ctx.kinds,
                        run_path=ctx.run.path, shard=ctx.shard, max_cost=max_cost)
    worker = ray.remote(num_cpus=0)(StageWorker).options(max_concurrency=10_000,
                                                         scheduling_strategy="SPREAD")
    workers = [worker.remote(setup, limits) for _ in range(settings.num_workers)]
    items = RayItems(ray, ctx, workers, limits, started)
    ctx.remote, ctx.cpu = items, RayMapper(ray)
    return items
