"""Runs a build: checks everything that can be checked before writing, then every stage in order.

``prepare`` validates the config, taxonomy, concept sources, prompts and API keys, and refuses a
run folder that was built from another config, all before creating a single file: a broken
config writes nothing. It then takes the run folder's lock (one build per folder) and undoes what a
crash left half-written. ``build`` then runs the stages (each skips what is done), regenerates
the splits, writes the exports and the manifest, and lets the lock go.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mis_data.config import FORMAT_VERSION, BuildConfig, ConfigError, RunConfig, load_config, sha256_text
from mis_data.decisions import DECISIONS, apply_decisions
from mis_data.decontaminate import decontaminate_build
from mis_data.finish import finish_run, prompt_hashes
from mis_data.images.store import ImageStore
from mis_data.models import make_client
from mis_data.models.session import record_usage
from mis_data.preflight import preflight
from mis_data.prompts import PromptLibrary
from mis_data.records import Step
from mis_data.rundir import RunDir, dump_json, lock_run, run_path
from mis_data.stages import STAGES
from mis_data.stages.base import BuildContext, StageStats, run_stage


@dataclass
class BuildResult:
    run: RunDir
    stats: list[StageStats] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def run_identity(config: BuildConfig, hashes: dict[str, str]) -> str:
    """What a run folder is bound to: the generation settings and the prompt texts."""
    return sha256_text(config.generation_hash() + dump_json(hashes))


def check_run_folder(run: RunDir, identity: str) -> None:
    """Refuse to mix: a run folder continues only the build that started it."""
    if run.exists() and run.config().config_sha256 != identity:
        raise ConfigError(f"{run.path}: this run folder was built from a different config or "
                          "prompts; use a new --run-dir, or restore the original config")


def prepare(config_path: Path, run_dir: Path | None = None, seed: int | None = None,
            max_cost: float | None = None, batch: bool = False,
            show_progress: bool = True) -> BuildContext:
    """Validate everything, then create (or reopen) the run folder and the model client."""
    config = load_config(config_path, {"seed": seed})
    checked = preflight(config)
    hashes = prompt_hashes(config.prompts_dir)
    run = RunDir(run_path(config, run_dir))
    identity = run_identity(config, hashes)
    check_run_folder(run, identity)
    lock = lock_run(run.path, "build", new=True)  # the first write; it undoes a crash's half-writes
    try:
        check_run_folder(RunDir(run.path), identity)  # again, as the lock's last holder left it
        run.stage_file("rejects").touch()  # present even when nothing is rejected: readers expect it
        run.write_config(RunConfig(format_version=FORMAT_VERSION, config_sha256=identity,
                                   prompt_sha256=hashes, config=config))
        prompts = PromptLibrary(config.prompts_dir)
        store = ImageStore(run.images_dir, config.images.max_side, config.images.max_pixels)
        client = make_client(config, prompts, store, run.cache_path, max_cost=max_cost,
                             batch=batch)
    except BaseException:
        lock.release()
        raise
    return BuildContext(config=config, run=run, taxonomy=checked.taxonomy, prompts=prompts,
                        client=client, store=store, show_progress=show_progress,
                        kinds=checked.kinds, lock=lock)


def apply_review(ctx: BuildContext) -> None:
    """Reviewers' decisions (``RUN/decisions.jsonl``), when there are any, before the stages
    (so a tie resolved to train is labelled in this build) and again before finishing."""
    if (ctx.run.path / DECISIONS).exists():
        apply_decisions(ctx.run, ctx.taxonomy)


def finish(ctx: BuildContext, formats: list[str] | None = None) -> dict[str, Any]:
    """Splits, exports and manifest from whatever the stages have produced.

    With ``decontaminate:`` in the config the train side of those splits is compared with the
    benchmarks, and while that drops samples the splits and exports are written again (the
    drops only shrink train, so this ends; usually after one more pass, on a rerun after none).
    """
    record_usage(ctx.run.path, ctx.client.usage.as_dict())
    apply_review(ctx)
    manifest = finish_run(ctx.run, ctx.config, ctx.store, formats=formats, taxonomy=ctx.taxonomy)
    settings = ctx.config.decontaminate
    while settings is not None and decontaminate_build(ctx.run, settings):
        manifest = finish_run(ctx.run, ctx.config, ctx.store, formats=formats,
                              taxonomy=ctx.taxonomy)
    return manifest


async def run_build(ctx: BuildContext) -> BuildResult:
    """Every stage in ``Step`` order (each skips what is done), then splits, exports, manifest."""
    result = BuildResult(run=ctx.run)
    try:
        apply_review(ctx)
        for step in Step:
            result.stats.append(await run_stage(STAGES[step](ctx)))
            ctx.run.close()
        result.manifest = finish(ctx)
    finally:
        ctx.run.close()
        await ctx.client.aclose()
        if ctx.lock is not None:
            ctx.lock.release()
    return result


def build(ctx: BuildContext) -> BuildResult:
    return asyncio.run(run_build(ctx))
