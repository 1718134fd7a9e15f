"""``mis-data validate``: check a folder against what its consumer parses, format by format.

Each format's rules live beside its writer (``<format>_check.py``); this module picks the format
(from the ``--format`` flag or the folder's marker file) and dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mis_data.core.config import ConfigError
from mis_data.core.rundir import RunDir
from mis_data.core.taxonomy import Taxonomy
from mis_data.export.awareness_check import validate_awareness
from mis_data.export.checks import Report
from mis_data.export.hf_check import validate_hf
from mis_data.export.internvl_check import validate_internvl
from mis_data.export.llamafactory_check import validate_llamafactory
from mis_data.export.mis_check import validate_mis

FORMATS = ("mis", "internvl", "llamafactory", "hf", "vlmguard", "awareness")

VALIDATORS: dict[str, Callable[..., Report]] = {
    "mis": validate_mis,
    "internvl": validate_internvl,
    "llamafactory": validate_llamafactory,
    "hf": validate_hf,
    "vlmguard": validate_llamafactory,  # the same chat rows and dataset_info.json
    "awareness": validate_awareness,
}


def detect_format(folder: Path) -> str | None:
    """Guess a folder's format from its marker file."""
    markers = (("awareness.jsonl", "awareness"), ("dataset_info.json", "llamafactory"),
               ("meta.json", "internvl"),
               ("mis_test", "mis"), ("mis_easy.json", "mis"), ("README.md", "hf"))
    return next((fmt for marker, fmt in markers if (folder / marker).exists()), None)


def run_images_per_sample(run: Path) -> int | None:
    """The ``images_per_sample`` a run folder was built with, when ``run`` is one."""
    folder = RunDir(run)
    if not folder.exists():
        return None
    try:
        return folder.config().config.images_per_sample
    except ConfigError:
        return None


def validate(path: Path, fmt: str | None = None, taxonomy: Taxonomy | None = None,
             media_dir: Path | None = None, images: int | None = None) -> tuple[str, Report]:
    """Check ``path`` as ``fmt`` (guessed when None); a run folder means its ``export/<fmt>``.

    ``images``: how many images every row must have; None takes a run folder's
    ``images_per_sample``, or else the first row's count (every row must match it)."""
    path = Path(path)
    if fmt and (path / "export" / fmt).is_dir():
        images = images or run_images_per_sample(path)
        path = path / "export" / fmt
    elif images is None and path.parent.name == "export":
        images = run_images_per_sample(path.parent.parent)
    fmt = fmt or detect_format(path)
    if fmt not in VALIDATORS:
        report = Report()
        report.add(str(path), f"cannot tell the format; pass --format ({'|'.join(FORMATS)})")
        return fmt or "?", report
    return fmt, VALIDATORS[fmt](path, taxonomy=taxonomy, media_dir=media_dir,
                                report=Report(images_per_row=images))
