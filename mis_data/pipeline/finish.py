"""Finishing a run: splits, exports and manifest from whatever the stages have produced.

Shared by ``build`` (after the stages), ``split`` (new membership, no model call) and
``export`` (current membership, chosen formats). Everything here reads the run folder and its
``config.yaml`` alone, so a finished run can be re-split and re-exported years later, with the
prompt hashes it was built with rather than today's prompt files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mis_data.core.config import BuildConfig, ConfigError, sha256_file
from mis_data.core.ids import without_real
from mis_data.core.pool import Mapper
from mis_data.core.rundir import RunDir, dump_json, read_json_or_none, write_text_atomic
from mis_data.core.samples import Sample, read_splits
from mis_data.core.targets import resolve_targets
from mis_data.core.taxonomy import Taxonomy, load_taxonomy
from mis_data.export import run_exports
from mis_data.export.common import RunInfo
from mis_data.images.store import ImageStore
from mis_data.pipeline.decisions import decisions_summary, reviewer_dropped
from mis_data.pipeline.decontaminate import summary as decontamination_summary
from mis_data.pipeline.manifest import build_manifest
from mis_data.pipeline.splits import join_samples, write_splits
from mis_data.reports.counts import stage_counts


def prompt_hashes(prompts_dir: Path) -> dict[str, str]:
    """sha256 of every prompt file, so the run records exactly which texts shaped it."""
    if not prompts_dir.is_dir():
        raise ConfigError(f"{prompts_dir}: prompts folder not found")
    return {
        path.relative_to(prompts_dir).as_posix(): sha256_file(path)
        for path in sorted(prompts_dir.rglob("*")) if path.is_file()
    }


def open_finished_run(path: Path) -> tuple[RunDir, BuildConfig, ImageStore]:
    """A run folder's resolved config and image store, read from its ``config.yaml`` alone."""
    run = RunDir(path)
    config = run.config().config
    if not run.stage_file("judgements").exists():
        raise ConfigError(f"{path}: the build has not judged anything yet; run `mis-data build`")
    store = ImageStore(run.images_dir, config.images.max_side, config.images.max_pixels)
    return run, config, store


def canonical_quotas(config: BuildConfig, taxonomy: Taxonomy | None) -> dict[str, int] | None:
    """Quota keys may be aliases; splits compare canonical sub-category names."""
    quotas = config.splits.quotas
    if not quotas:
        return None
    if taxonomy is None:
        try:
            taxonomy = load_taxonomy(config.taxonomy)
        except ConfigError:
            return dict(quotas)
    return {taxonomy.canonical(name) or name: limit for name, limit in quotas.items()}


def split_targets(config: BuildConfig, taxonomy: Taxonomy | None
                  ) -> dict[str, dict[str, int]] | None:
    """The caps ``targets:`` puts on each side of the splits (with ``trim``), else None."""
    if config.targets is None or not config.targets.trim:
        return None
    return resolve_targets(config, taxonomy or load_taxonomy(config.taxonomy))


def membership(run: RunDir, config: BuildConfig, taxonomy: Taxonomy | None, *,
               seed: int | None = None, val_size: float | None = None,
               trim: bool = True) -> tuple[list[Sample], dict[str, Any]]:
    """The samples to split and the settings to split them with (seed, val size, quotas and,
    with ``trim``, the targets' caps): what ``finish_run`` writes and the targets measure."""
    dropped = reviewer_dropped(run)  # a reviewer's drop outranks the judges' route
    samples = [s for s in join_samples(run) if without_real(s.id) not in dropped]
    return samples, {"seed": config.seed if seed is None else seed,
                     "val_size": config.splits.val_size if val_size is None else val_size,
                     "quotas": canonical_quotas(config, taxonomy),
                     "targets": split_targets(config, taxonomy) if trim else None}


def run_info(run: RunDir, config: BuildConfig, split_manifest: dict[str, Any],
             formats: list[str]) -> RunInfo:
    """What the exports (the dataset card) say about the run.

    ``formats`` is every format of the run (config and this call), so an export written alone
    still knows its siblings (LLaMA-Factory's entry pointing at the InternVL file).
    """
    rejects = {stage: data["rejects_by_reason"] for stage, data in stage_counts(run).items()}
    return RunInfo(
        name=config.name, backend=config.backend, models=config.models_summary(),
        prompt_sha256=dict(sorted(run.config().prompt_sha256.items())),
        image_source=config.images.source, images_per_sample=config.images_per_sample,
        seed=config.seed,
        split_seed=int(split_manifest.get("seed", config.seed)),
        val_size=float(split_manifest.get("val_size", 0.0)), license=config.license,
        rejects=rejects, excluded=dict(split_manifest.get("excluded_by_reason", {})),
        decontamination=decontamination_summary(run),
        formats=tuple(dict.fromkeys([*config.exports, *formats])),
    )


def finish_run(run: RunDir, config: BuildConfig, store: ImageStore, *, seed: int | None = None,
               val_size: float | None = None, formats: list[str] | None = None,
               taxonomy: Taxonomy | None = None, resplit: bool = True,
               absolute_paths: bool = False, mapper: Mapper | None = None) -> dict[str, Any]:
    """(Re)write splits (unless ``resplit`` is off), the given exports and the manifest.

    ``seed`` and ``val_size`` default to the run's config. With ``resplit=False`` the current
    split files are exported as they are (``mis-data export``). ``absolute_paths`` writes
    absolute image paths into the train exports (``mis-data export --absolute-paths``).
    ``mapper`` writes the formats side by side (Ray tasks with ``executor: ray``).
    """
    formats = list(formats or config.exports)
    if resplit:
        samples, settings = membership(run, config, taxonomy, seed=seed, val_size=val_size)
        splits = write_splits(run, samples, **settings).splits
    else:
        if not (run.splits_dir / "manifest.json").exists():
            raise ConfigError(f"{run.path}: no splits yet; run `mis-data split` first")
        splits = read_splits(run)
    split_manifest = read_json_or_none(run.splits_dir / "manifest.json") or {}
    info = replace(run_info(run, config, split_manifest, formats), absolute_paths=absolute_paths)
    run_exports(splits, store, run.export_dir, formats, info, mapper)
    usage = read_json_or_none(run.path / "usage.json") or {"sessions": [], "total": {}}
    manifest = build_manifest(run, config, splits, usage, run.config().prompt_sha256)
    manifest["split_plan"] = {key: split_manifest.get(key) for key in
                              ("seed", "val_size", "quotas", "counts", "excluded_by_reason")}
    if info.decontamination:
        manifest["decontamination"] = info.decontamination
    review = decisions_summary(run)
    if review is not None:
        manifest["review"] = review
    write_text_atomic(run.manifest_path, dump_json(manifest))
    return manifest
