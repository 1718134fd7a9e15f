"""The review gallery: every sample of a run, to audit by eye and decide on (keep, drop, move,
resolve a tie), at MIS scale.

``write_review`` writes a folder that works when opened as a file (no server, no CDN)::

    review/index.html        the page shell (assets/index.html)
    review/gallery.css       style, and gallery.js the script (assets/)
    review/data/index.js     one light row per sample, the rejects and the decision log
    review/data/details-NNN.js   the long text of 250 samples each, loaded for cards on screen
    review/thumbs/<sha>.jpg  thumbnails (at most 256 px), made once per image

Data travels as scripts rather than JSON files because a page opened from ``file://`` may not
``fetch`` its neighbours, but may load their scripts. The page renders one page of cards at a
time, so 10,000 samples open as fast as 50. Every value is written with ``textContent``: model
text never becomes markup. Decisions are kept in the browser and downloaded as
``decisions.jsonl``, or posted to ``mis-data review --serve`` (``serve.py``), which appends them
to ``RUN/decisions.jsonl`` for ``mis-data apply-decisions``.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from pathlib import Path

from mis_data.core.rundir import RunDir, read_json_or_none, write_text_atomic
from mis_data.reports.review.data import GalleryData, RunRecords
from mis_data.reports.review.thumbs import THUMB_SIDE, THUMBS, make_thumbnails

__all__ = ["THUMBS", "THUMB_SIDE", "default_out", "write_review"]

ASSETS = ("gallery.css", "gallery.js")
DATA = "data"


def asset(name: str) -> str:
    # One name per ``joinpath``: Python 3.10's ``Traversable.joinpath`` takes a single child.
    folder = resources.files("mis_data.reports.review").joinpath("assets")
    return folder.joinpath(name).read_text(encoding="utf-8")


def run_title(run: RunDir) -> tuple[str, str]:
    """The run's name and backend, from the manifest or the resolved config."""
    manifest = read_json_or_none(run.manifest_path) or {}
    if manifest.get("name"):
        return str(manifest["name"]), str(manifest.get("backend", "?"))
    config = run.config().config
    return config.name, config.backend


def script(function: str, *values: object) -> str:
    """A call that hands JSON values to the page (ASCII-only, so any encoding works)."""
    args = ",".join(json.dumps(value, ensure_ascii=True, separators=(",", ":")) for value in values)
    return f"{function}({args});\n"


def default_out(run_dir: Path) -> Path:
    """Where the gallery goes when no ``--out`` is given: ``RUN/review/index.html``, absolute."""
    return (Path(run_dir) / "review" / "index.html").resolve()


def write_review(run_dir: Path, out: Path | None = None) -> Path:
    """Write the gallery (default ``run_dir/review/index.html``) and its data; return its path."""
    run = RunDir(Path(run_dir))
    run.config()  # not a run folder: one clear error now
    out = Path(out).resolve() if out is not None else default_out(run.path)
    folder = out.parent
    records = RunRecords.read(run)
    refs = [ref for split in records.splits.values() for sample in split for ref in sample.images]
    refs += [ref for pair in records.pairs.values() for ref in pair.images]
    refs += [ref for twin in records.twins.values() for ref in twin.images]
    thumbs, full = make_thumbnails(run, refs, folder)
    gallery = GalleryData(records, thumbs, full)
    gallery.build()
    title, backend = run_title(run)
    if backend == "offline":
        backend += " (templates and rules, no language model)"
    data = folder / DATA
    index = gallery.index(title, backend)
    write_text_atomic(data / "index.js", script("MIS_REVIEW.index", index))
    chunk, names = index["chunk"], set()
    for number, start in enumerate(range(0, len(gallery.details), chunk)):
        names.add(name := f"details-{number:03d}.js")
        write_text_atomic(data / name, script("MIS_REVIEW.details", number,
                                              gallery.details[start:start + chunk]))
    for stale in data.glob("details-*.js"):
        if stale.name not in names:
            stale.unlink()
    for name in ASSETS:
        write_text_atomic(folder / name, asset(name))
    write_text_atomic(out, asset("index.html").replace("{{title}}", escape(title)))
    return out

