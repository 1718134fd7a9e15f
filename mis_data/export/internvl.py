r"""InternVL chat fine-tuning data: a JSONL of multi-image records plus the meta JSON.

docs/formats.md §1: ``image`` is a list of paths relative to the meta ``root``; the human turn
carries one ``<image>`` per image (``Image-1: <image>\nImage-2: <image>\n`` then the question,
InternVL's own multi-image convention); every turn uses ``value``; ``width_list`` and
``height_list`` are the real image sizes. Paths in the meta are relative to this folder, so the
export is the same bytes wherever the run lives — but InternVL opens ``root`` and ``annotation``
from the folder training starts in, so such a meta works only from here. With
``RunInfo.absolute_paths`` (``mis-data export RUN --absolute-paths``) the meta's ``root`` and
``annotation`` and every ``image`` path are absolute paths of the published export instead.
"""

from __future__ import annotations

from pathlib import Path

from mis_data.core.records import scrub_template_tokens
from mis_data.core.samples import Sample
from mis_data.export.common import (
    RunInfo,
    absolute_paths,
    cell_columns,
    place_sample_images,
    published_folder,
    write_json,
    write_jsonl,
)
from mis_data.images.store import ImageStore


def user_prefix(count: int) -> str:
    r"""``Image-1: <image>\nImage-2: <image>\n`` (one line per image, InternVL's multi-image form)."""
    return "".join(f"Image-{slot}: <image>\n" for slot in range(1, count + 1))


USER_PREFIX = user_prefix(2)


def record_for(sample: Sample, image_paths: list[str]) -> dict:
    """One InternVL record; ``image_paths`` as the record must name them (relative to ``root`` or
    absolute)."""
    return {
        "id": sample.id,
        "image": image_paths,
        "width_list": [image.width for image in sample.images],
        "height_list": [image.height for image in sample.images],
        "category": sample.category,
        "sub_category": sample.sub_category,
        "source": sample.source,
        **cell_columns(sample),
        "conversations": [
            {"from": "human",
             "value": user_prefix(len(sample.images)) + scrub_template_tokens(sample.question)},
            {"from": "gpt", "value": scrub_template_tokens(sample.label or "")},
        ],
    }


def export_internvl(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
                    info: RunInfo | None = None) -> None:
    """``meta.json`` plus ``mis_train.jsonl`` (and ``mis_val.jsonl`` when val exists)."""
    # Relative: paths from here (the meta) and from ``root`` (the records). Absolute: the
    # published folder's paths (``out`` is still the temporary folder while this runs).
    base = f"{published_folder(out).as_posix()}/" if absolute_paths(info) else ""
    meta = {}
    for split in ("train", "val"):
        samples = sorted(splits.get(split, []), key=lambda s: s.id)
        if not samples and split == "val":
            continue
        rows = []
        for sample in samples:
            paths = place_sample_images(store, sample, out / "images", "")
            rows.append(record_for(sample, [f"{base}images/{path}" if base else path for path in paths]))
        annotation = f"mis_{split}.jsonl"
        write_jsonl(out / annotation, rows)
        meta[f"mis_{split}"] = {"root": f"{base}images/", "annotation": f"{base}{annotation}",
                                "data_augment": False, "max_dynamic_patch": 6,
                                "repeat_time": 1, "length": len(rows)}
    write_json(out / "meta.json", meta)
