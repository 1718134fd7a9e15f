"""Exporters: each writes one format from the same split records, into ``export/<format>/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mis_data.export.common import build_atomically
from mis_data.export.internvl import export_internvl
from mis_data.export.mis import export_mis
from mis_data.images.store import ImageStore
from mis_data.splits import Sample

Exporter = Callable[[dict[str, list[Sample]], ImageStore, Path], None]

EXPORTERS: dict[str, Exporter] = {
    "mis": export_mis,
    "internvl": export_internvl,
}


def run_exports(splits: dict[str, list[Sample]], store: ImageStore, export_dir: Path,
                formats: list[str]) -> list[str]:
    """Write each requested format atomically; returns the formats written."""
    written = []
    for name in formats:
        exporter = EXPORTERS.get(name)
        if exporter is None:
            continue
        build_atomically(export_dir / name, lambda folder, e=exporter: e(splits, store, folder))
        written.append(name)
    return written
