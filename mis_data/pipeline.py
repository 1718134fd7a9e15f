"""Runs a build: checks everything that can be checked before writing, then every stage in order.

``prepare`` validates the config, taxonomy, concept sources, prompts and API keys, and refuses a
run folder that was built from another config, all before creating a single file: a broken
config writes nothing. ``build`` then runs the stages (each skips what is done), regenerates the
splits, writes the exports and the manifest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mis_data.config import (
    BuildConfig,
    ConfigError,
    ShippedConcepts,
    load_config,
    sha256_text,
)
from mis_data.finish import finish_run, merge_usage, prompt_hashes
from mis_data.images.store import ImageStore
from mis_data.models import check_api_keys, make_client
from mis_data.prompts import PromptLibrary
from mis_data.rundir import RunDir, cut_partial_tail, dump_json, write_text_atomic
from mis_data.stages.base import BuildContext, StageStats, run_stage
from mis_data.stages.concepts import build_concepts, concept_files
from mis_data.stages.dedup import find_near_duplicates
from mis_data.stages.general import build_general
from mis_data.stages.images import ImageStage
from mis_data.stages.instructions import InstructionStage
from mis_data.stages.judge import JudgeStage
from mis_data.stages.labels import LabelStage
from mis_data.stages.pairs import PairStage
from mis_data.stages.real import build_real_pairs
from mis_data.taxonomy import Taxonomy, load_taxonomy

FORMAT_VERSION = 1
GENERATION_STAGES = (ImageStage, PairStage, InstructionStage)
REVIEW_STAGES = (JudgeStage, LabelStage)


@dataclass
class BuildResult:
    run: RunDir
    stats: list[StageStats] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def check_references(config: BuildConfig, taxonomy: Taxonomy) -> None:
    """Every sub-category the config names exists; every concept file is there."""
    named = list(config.concepts.sub_categories or []) + list(config.splits.quotas or {})
    for name in named:
        if taxonomy.canonical(name) is None:
            raise ConfigError(f"unknown sub-category {name!r} in the config "
                              f"(known: {', '.join(taxonomy.sub_category_names)})")
    for source in config.concepts.sources:
        if isinstance(source, ShippedConcepts):
            concept_files(source.path)
        elif hasattr(source, "path") and not source.path.exists():
            raise ConfigError(f"{source.path}: concept source not found")
    if config.general is not None and not config.general.path.is_file():
        raise ConfigError(f"{config.general.path}: general data file not found")
    if config.real is not None and config.real.folder is not None and not config.real.folder.is_dir():
        raise ConfigError(f"{config.real.folder}: real photo folder not found")
    if config.images.source == "folder" and (config.images.folder is None
                                             or not config.images.folder.is_dir()):
        raise ConfigError(f"images.folder {config.images.folder}: image folder not found")
    if not config.instructions.giveaway_phrases.is_file():
        raise ConfigError(f"{config.instructions.giveaway_phrases}: giveaway phrase list not found")


def resolved_config(config: BuildConfig, hashes: dict[str, str]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "config_sha256": run_identity(config, hashes),
        "prompt_sha256": hashes,
        "config": config.model_dump(mode="json"),
    }


def run_identity(config: BuildConfig, hashes: dict[str, str]) -> str:
    """What a run folder is bound to: the generation settings and the prompt texts."""
    return sha256_text(config.generation_hash() + dump_json(hashes))


def check_run_folder(run: RunDir, identity: str) -> None:
    """Refuse to mix: a run folder continues only the build that started it."""
    if not run.exists():
        return
    try:
        existing = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        existing = {}
    version = existing.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(f"{run.path}: run folder format {version} is not {FORMAT_VERSION}; "
                          "rebuild into a new --run-dir")
    if existing.get("config_sha256") != identity:
        raise ConfigError(f"{run.path}: this run folder was built from a different config or "
                          "prompts; use a new --run-dir, or restore the original config")


def prepare(config_path: Path, run_dir: Path | None = None, seed: int | None = None,
            max_cost: float | None = None, batch: bool = False,
            show_progress: bool = True) -> BuildContext:
    """Validate everything, then create (or reopen) the run folder and the model client."""
    config = load_config(config_path, {"seed": seed})
    taxonomy = load_taxonomy(config.taxonomy)
    check_references(config, taxonomy)
    hashes = prompt_hashes(config.prompts_dir)
    check_api_keys(config)
    run = RunDir(run_dir or Path("runs") / config.name)
    identity = run_identity(config, hashes)
    check_run_folder(run, identity)
    run.path.mkdir(parents=True, exist_ok=True)
    run.stage_file("rejects").touch()  # present even when nothing is rejected: readers expect it
    for stage_file in run.path.glob("*.jsonl"):
        cut_partial_tail(stage_file)  # a line a crash left half-written is never data
    write_text_atomic(run.config_path,
                      yaml.safe_dump(resolved_config(config, hashes), sort_keys=True))
    prompts = PromptLibrary(config.prompts_dir)
    store = ImageStore(run.images_dir, config.images.max_side, config.images.max_pixels)
    client = make_client(config, prompts, store, run.cache_path, max_cost=max_cost, batch=batch)
    return BuildContext(config=config, run=run, taxonomy=taxonomy, prompts=prompts,
                        client=client, store=store, show_progress=show_progress)


def finish(ctx: BuildContext, formats: list[str] | None = None) -> dict[str, Any]:
    """Splits, exports and manifest from whatever the stages have produced."""
    merge_usage(ctx.run, ctx.client.usage.as_dict())
    return finish_run(ctx.run, ctx.config, ctx.store, formats=formats, taxonomy=ctx.taxonomy)


# -- finishing a run: shared by `build`, `split` and `export` (no model is called) ----------


async def run_build(ctx: BuildContext) -> BuildResult:
    result = BuildResult(run=ctx.run)
    try:
        result.stats.append(await build_concepts(ctx))
        for stage_class in GENERATION_STAGES:
            result.stats.append(await run_stage(stage_class(ctx)))
            ctx.run.close()
        result.stats.append(find_near_duplicates(ctx))
        ctx.run.close()
        for stage_class in REVIEW_STAGES:
            result.stats.append(await run_stage(stage_class(ctx)))
            ctx.run.close()
        result.stats.append(build_real_pairs(ctx))
        result.stats.append(build_general(ctx))
        ctx.run.close()
        result.manifest = finish(ctx)
    finally:
        ctx.run.close()
        await ctx.client.aclose()
    return result


def build(ctx: BuildContext) -> BuildResult:
    return asyncio.run(run_build(ctx))
