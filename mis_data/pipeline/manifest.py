"""The run manifest: counts, versions, usage and the sha256 of every exported file.

Everything in it is derived from the run folder, so it is the same after a resumed build as
after an uninterrupted one, and it contains no timestamps, so it changes only when data does.
"""

from __future__ import annotations

import stat
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from mis_data.core.config import BuildConfig, sha256_file
from mis_data.core.rundir import RunDir
from mis_data.core.samples import SPLITS, Sample
from mis_data.reports.counts import stage_counts

PACKAGES = ("mis-data", "openai", "datasets", "pillow", "pydantic", "huggingface_hub")


def package_versions() -> dict[str, str]:
    """The installed version of each package whose behaviour shapes the data (``not installed`` for a
    missing one)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def split_counts(splits: dict[str, list[Sample]]) -> dict[str, Any]:
    """Each non-empty split's size, in total and by sub-category (sorted so the manifest is stable)."""
    table: dict[str, Any] = {}
    for split in SPLITS:
        members = splits.get(split, [])
        if not members:
            continue
        by_sub = Counter(sample.sub_category for sample in members)
        table[split] = {"total": len(members), "by_sub_category": dict(sorted(by_sub.items()))}
    return table


def exported_files(export_dir: Path) -> dict[str, str]:
    """The sha256 of every exported file by its path under ``export_dir``; hidden files and folders are
    left out, and a missing folder gives nothing. Hard links to one file (the exports link each
    stored image into several folders) are read once."""
    if not export_dir.exists():
        return {}
    files = {}
    by_inode: dict[tuple[int, int], str] = {}
    for path in sorted(export_dir.rglob("*")):
        relative = path.relative_to(export_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        try:
            status = path.stat()
        except OSError:  # a broken link is not an exported file (as ``Path.is_file`` says)
            continue
        if stat.S_ISREG(status.st_mode):
            inode = (status.st_dev, status.st_ino)
            if inode not in by_inode:
                by_inode[inode] = sha256_file(path)
            files[relative.as_posix()] = by_inode[inode]
    return files


def build_manifest(run: RunDir, config: BuildConfig, splits: dict[str, list[Sample]],
                   usage: dict[str, Any], prompt_hashes: dict[str, str]) -> dict[str, Any]:
    """The manifest of a run as a dict (the caller writes it). It has no timestamps, so a rerun over the
    same data gives the same file."""
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
