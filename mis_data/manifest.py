"""The run manifest: counts, versions, usage and the sha256 of every exported file.

Everything in it is derived from the run folder, so it is the same after a resumed build as
after an uninterrupted one, and it contains no timestamps, so it changes only when data does.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from mis_data.config import BuildConfig, sha256_file
from mis_data.records import STEP_NAMES, Step
from mis_data.rundir import RunDir, complete_lines
from mis_data.splits import SPLITS, Sample

PACKAGES = ("mis-data", "openai", "datasets", "pillow", "pydantic", "huggingface_hub")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def stage_counts(run: RunDir) -> dict[str, Any]:
    """Records and current rejects (by reason) per stage."""
    rejects: dict[str, Counter[str]] = defaultdict(Counter)
    for reject in run.rejects():
        rejects[reject.stage][reject.reason.value] += 1
    counts = {}
    for stage in (*STEP_NAMES, *sorted(set(rejects) - set(STEP_NAMES))):
        if stage == Step.dedup:  # a filter with no file of its own: what passed it
            records = counts[Step.instructions.value]["records"] - sum(rejects[stage].values())
        elif stage in STEP_NAMES:
            records = sum(1 for _ in complete_lines(run.stage_file(stage)))
        else:  # a step after the build (decontamination): it only rejects
            records = 0
        counts[stage] = {"records": records, "rejected": sum(rejects[stage].values()),
                         "rejects_by_reason": dict(sorted(rejects[stage].items()))}
    return counts


def stage_column_width(stages: Iterable[str]) -> int:
    """Width of a text table's stage column: 14, wider for a long name ("decontamination")."""
    return max(14, *(len(stage) + 2 for stage in stages))


def split_counts(splits: dict[str, list[Sample]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for split in SPLITS:
        members = splits.get(split, [])
        if not members:
            continue
        by_sub = Counter(sample.sub_category for sample in members)
        table[split] = {"total": len(members), "by_sub_category": dict(sorted(by_sub.items()))}
    return table


def exported_files(export_dir: Path) -> dict[str, str]:
    if not export_dir.exists():
        return {}
    files = {}
    for path in sorted(export_dir.rglob("*")):
        relative = path.relative_to(export_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files[relative.as_posix()] = sha256_file(path)
    return files


def build_manifest(run: RunDir, config: BuildConfig, splits: dict[str, list[Sample]],
                   usage: dict[str, Any], prompt_hashes: dict[str, str]) -> dict[str, Any]:
    return {
        "name": config.name,
        "backend": config.backend,
        "offline": config.backend == "offline",
        "seed": config.seed,
        "config_sha256": config.generation_hash(),
        "models": config.models_summary(),
        "prompt_sha256": dict(sorted(prompt_hashes.items())),
        "versions": package_versions(),
        "stages": stage_counts(run),
        "splits": split_counts(splits),
        "usage": usage,
        "exported_files": exported_files(run.export_dir),
    }
