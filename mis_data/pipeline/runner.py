"""Runs a build: checks everything that can be checked before writing, then every stage in order.

``prepare`` validates the config, taxonomy, concept sources, prompts and API keys, and refuses a
run folder that was built from another config, all before creating a single file: a broken
config writes nothing. It then takes the run folder's lock (one build per folder) and undoes what a
crash left half-written. ``build`` then runs the stages (each skips what is done), regenerates
the splits, writes the exports and the manifest, and lets the lock go.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mis_data.core.config import (
    FORMAT_VERSION,
    BuildConfig,
    ConfigError,
    GeneratedConcepts,
    RunConfig,
    sha256_text,
)
from mis_data.core.decision_log import DECISIONS
from mis_data.core.prompts import PromptLibrary
from mis_data.core.rundir import RunDir, dump_json, lock_run, run_path
from mis_data.core.shards import Shard, bind_shard
from mis_data.core.targets import Progress, achieved_counts, concepts_needed, record_progress, resolve_targets
from mis_data.images.store import ImageStore
from mis_data.models import make_client
from mis_data.models.session import record_usage
from mis_data.pipeline.cluster import attach_cluster, ray_module
from mis_data.pipeline.decisions import apply_decisions
from mis_data.pipeline.decontaminate import decontaminate_build
from mis_data.pipeline.decontaminate import summary as decontamination_summary
from mis_data.pipeline.finish import finish_run, membership, prompt_hashes
from mis_data.pipeline.preflight import Checked, load_checked
from mis_data.pipeline.splits import assign_splits
from mis_data.stages import STAGES, TASKS
from mis_data.stages.base import BuildContext, StageStats, run_stream
from mis_data.stages.concepts import top_up

log = logging.getLogger("mis_data")


@dataclass
class BuildResult:
    """What a build returns to the command: the run folder, every stage's stats, the manifest, and the
    lines it skipped or warned about."""
    run: RunDir
    stats: list[StageStats] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    skipped_decisions: list[str] = field(default_factory=list)  # lines of decisions.jsonl not applied
    warnings: list[str] = field(default_factory=list)  # e.g. benchmark items decontamination skipped


def run_identity(config: BuildConfig, hashes: dict[str, str]) -> str:
    """What a run folder is bound to: the generation settings and the prompt texts."""
    return sha256_text(config.generation_hash() + dump_json(hashes))


def check_run_folder(run: RunDir, config: BuildConfig, hashes: dict[str, str]) -> None:
    """Refuse to mix: a run folder continues only the build that started it. A prompt file
    added to the folder since (a new version's prompt for an option the build does not use)
    cannot have shaped its data, so only the files the run recorded are compared; a changed
    or removed one, or another config, is refused."""
    if not run.exists():
        return
    recorded = run.config()
    kept = {name: hashes[name] for name in recorded.prompt_sha256 if name in hashes}
    if len(kept) != len(recorded.prompt_sha256) or \
            run_identity(config, kept) != recorded.config_sha256:
        raise ConfigError(f"{run.path}: this run folder was built from a different config or "
                          "prompts; use a new --run-dir, or restore the original config")


def prepare(config: Checked | Path, run_dir: Path | None = None, seed: int | None = None,
            max_cost: float | None = None, batch: bool = False,
            show_progress: bool = True, shard: Shard | None = None) -> BuildContext:
    """Create (or reopen) the run folder and the model client for a checked config (a path is
    read and checked here; ``seed`` overrides it then). With ``shard`` the build works on that
    shard's pairs only (``mis-data merge`` joins the shards)."""
    checked = config if isinstance(config, Checked) else load_checked(config, {"seed": seed})
    build_config = checked.config  # the parameter may be a path; this is the checked config
    if build_config.on_ray:
        ray_module()  # installed? (a clear error before any file is written)
    if batch and build_config.on_ray:
        raise ConfigError("--batch cannot be used with executor: ray: the Batch API is one queue "
                          "at the provider, which Ray workers cannot share; build --batch with "
                          "the local executor")
    if shard is not None and build_config.targets is not None:
        raise ConfigError("--shard cannot be used with targets:: a top-up round needs the whole "
                          "build's counts; build without targets, or as one build")
    hashes = prompt_hashes(build_config.prompts_dir)
    run = RunDir(run_path(build_config, run_dir, shard))
    identity = run_identity(build_config, hashes)
    check_run_folder(run, build_config, hashes)
    lock = lock_run(run.path, "build", new=True)  # the first write; it undoes a crash's half-writes
    try:
        check_run_folder(RunDir(run.path), build_config, hashes)  # as the lock's last holder left it
        bind_shard(run.path, shard, new=not run.exists())
        run.stage_file("rejects").touch()  # present even when nothing is rejected: readers expect it
        run.write_config(RunConfig(format_version=FORMAT_VERSION, config_sha256=identity,
                                   prompt_sha256=hashes, config=build_config))
        prompts = PromptLibrary(build_config.prompts_dir)
        store = ImageStore(run.images_dir, build_config.images.max_side, build_config.images.max_pixels)
        client = make_client(build_config, prompts, store, run.cache_path, max_cost=max_cost,
                             batch=batch, offline_answers={
                                 name: task.offline for name, task in TASKS.items() if task.offline})
    except BaseException:
        lock.release()
        raise
    ctx = BuildContext(config=build_config, run=run, taxonomy=checked.taxonomy, prompts=prompts,
                       client=client, store=store, show_progress=show_progress,
                       kinds=checked.kinds, lock=lock, shard=shard)
    if build_config.on_ray:
        try:
            attach_cluster(ctx, max_cost)
        except BaseException:
            lock.release()
            raise
    return ctx


def apply_review(ctx: BuildContext) -> list[str]:
    """Reviewers' decisions (``RUN/decisions.jsonl``), when there are any, before the stages
    (so a tie resolved to train is labelled in this build) and again before finishing; returns
    one line per log line or decision that was skipped, and why (``mis-data build`` prints them)."""
    if not (ctx.run.path / DECISIONS).exists():
        return []
    return apply_decisions(ctx.run, ctx.taxonomy).problems


def finish(ctx: BuildContext, formats: list[str] | None = None,
           warnings: list[str] | None = None) -> dict[str, Any]:
    """Splits, exports and manifest from whatever the stages have produced.

    With ``decontaminate:`` in the config the train side of those splits is compared with the
    benchmarks, and while that drops samples the splits and exports are written again (the
    drops only shrink train, so this ends; usually after one more pass, on a rerun after none).
    What it skipped (unreadable benchmark items) is added to ``warnings``, one line each.
    """
    apply_review(ctx)
    mapper = ctx.cpu if ctx.remote is not None else None  # exports side by side on a cluster
    manifest = finish_run(ctx.run, ctx.config, ctx.store, formats=formats, taxonomy=ctx.taxonomy,
                          mapper=mapper)
    settings = ctx.config.decontaminate
    if settings is None:
        return manifest
    while decontaminate_build(ctx.run, settings, warnings, ctx.cpu):
        manifest = finish_run(ctx.run, ctx.config, ctx.store, formats=formats,
                              taxonomy=ctx.taxonomy, mapper=mapper)
    if manifest.get("decontamination") != decontamination_summary(ctx.run):
        # a first check that dropped nothing: the manifest and card must still say it ran
        manifest = finish_run(ctx.run, ctx.config, ctx.store, formats=formats,
                              taxonomy=ctx.taxonomy, mapper=mapper)
    return manifest


def current_round(ctx: BuildContext) -> int:
    """The latest round whose concepts the run holds (1 without top-ups)."""
    return max((concept.round or 1 for concept in ctx.view.concepts.values()), default=1)


def measure(ctx: BuildContext) -> Progress:
    """What the splits would hold now per sub-category and side, before any trimming."""
    samples, settings = membership(ctx.run, ctx.config, ctx.taxonomy, trim=False)
    plan = assign_splits(samples, **settings)
    concepts = Counter(concept.sub_category for concept in ctx.view.concepts.values())
    return Progress(round=current_round(ctx), targets=resolve_targets(ctx.config, ctx.taxonomy),
                    achieved=achieved_counts([s for members in plan.splits.values()
                                              for s in members]),
                    concepts=dict(sorted(concepts.items())))


async def next_round(ctx: BuildContext) -> bool:
    """After a round: measure against the targets and, when a sub-category is short and
    rounds are left, add its concepts for the next round. True when there is a next round."""
    progress = measure(ctx)
    settings = ctx.config.targets
    assert settings is not None
    short = progress.short()
    if not short:
        progress.notes.append(f"every target met after round {progress.round}")
    elif progress.round >= settings.max_rounds:
        progress.notes.append(f"max_rounds ({settings.max_rounds}) reached with "
                              f"{len(short)} sub-categories short: " + ", ".join(sorted(short)))
    else:
        wants = {sub: concepts_needed(progress, sub, missing) for sub, missing in short.items()}
        topped = await top_up(ctx, wants, progress.round + 1)
        progress.top_up = {sub: n for sub, n in sorted(topped.added.items()) if n}
        generated = any(isinstance(source, GeneratedConcepts)
                        for source in ctx.config.concepts.sources)
        why = ("the shipped list is used up and the generated source's other proposals were "
               "rejected (see rejects.jsonl, stage concepts)" if generated else
               "the shipped list is used up (add a `generated` source for more)")
        for sub in sorted(topped.exhausted):
            progress.notes.append(
                f"{sub}: {topped.added.get(sub, 0)} of {wants[sub]} more concepts found; {why}")
    record_progress(ctx.run, progress)
    for note in progress.notes:
        log.warning("targets: %s", note)
    return bool(progress.top_up)


async def run_build(ctx: BuildContext) -> BuildResult:
    """Every stage in order (``stages.STAGES``), runs of per-item stages streaming into each
    other (``run_stream``; each skips what is done); with ``targets:`` again for each top-up
    round; then splits, exports, manifest."""
    result = BuildResult(run=ctx.run)
    recorded = False
    try:
        result.skipped_decisions = apply_review(ctx)
        while True:
            result.stats.extend(await run_stream([stage(ctx) for stage in STAGES.values()]))
            ctx.run.close()
            if ctx.config.targets is None or not await next_round(ctx):
                break
        record_usage(ctx.run.path, ctx.client.usage.as_dict())
        recorded = True
        result.manifest = finish(ctx, warnings=result.warnings)
    finally:
        ctx.run.close()
        if not recorded:  # a build that stopped keeps what its requests cost and met
            record_usage(ctx.run.path, ctx.client.usage.as_dict())
        await ctx.client.aclose()
        if ctx.remote is not None:
            ctx.remote.close()
        if ctx.lock is not None:
            ctx.lock.release()
    return result


def build(ctx: BuildContext) -> BuildResult:
    """Run the whole build for a prepared context (see ``run_build``); the lock of ``prepare`` is released
    at the end, also on failure."""
    return asyncio.run(run_build(ctx))
