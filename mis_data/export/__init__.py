"""Exporters: each writes one format from the same split records, into ``export/<format>/``.

Every exporter has the same signature, ``(splits, store, folder, info)``, and writes into a
fresh folder that is swapped into place only when complete (``build_atomically``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mis_data.core.pool import Mapper
from mis_data.core.samples import Sample
from mis_data.export.awareness import export_awareness
from mis_data.export.common import RunInfo, build_atomically
from mis_data.export.hf import export_hf
from mis_data.export.internvl import export_internvl
from mis_data.export.llamafactory import export_llamafactory
from mis_data.export.mis import export_mis
from mis_data.export.vlmguard import export_vlmguard
from mis_data.images.store import ImageStore

Exporter = Callable[[dict[str, list[Sample]], ImageStore, Path, RunInfo | None], None]

EXPORTERS: dict[str, Exporter] = {
    "mis": export_mis,
    "internvl": export_internvl,
    "llamafactory": export_llamafactory,
    "hf": export_hf,
    "vlmguard": export_vlmguard,  # rewrite: (VLMGuard-R1 rewriter data)
    "awareness": export_awareness,
}


@dataclass(frozen=True)
class ExportJob:
    """One format to write: everything its exporter reads, so it can run anywhere (a Ray task
    with ``executor: ray``)."""

    name: str
    splits: dict[str, list[Sample]]
    store: ImageStore
    export_dir: Path
    info: RunInfo | None


def write_export(job: ExportJob) -> str:
    """Write one format atomically into ``export/<name>/``; returns its name."""
    exporter = EXPORTERS[job.name]

    def build(folder: Path) -> None:
        exporter(job.splits, job.store, folder, job.info)

    build_atomically(job.export_dir / job.name, build)
    return job.name


def run_exports(splits: dict[str, list[Sample]], store: ImageStore, export_dir: Path,
                formats: list[str], info: RunInfo | None = None,
                mapper: Mapper | None = None) -> list[str]:
    """Write each requested format atomically; returns the formats written. With a
    ``mapper`` (Ray tasks) the formats are written side by side; each format's files are the
    same either way.

    An unknown format is an error, not a silent skip: the CLI and config both name formats.
    """
    unknown = [name for name in formats if name not in EXPORTERS]
    if unknown:
        raise ValueError(f"unknown export format(s): {', '.join(unknown)} "
                         f"(known: {', '.join(EXPORTERS)})")
    jobs = [ExportJob(name, splits, store, export_dir, info) for name in formats]
    if mapper is None:
        return [write_export(job) for job in jobs]
    return mapper.map(write_export, jobs)
