"""The MIS layout: ``mis_test/mis_{easy,hard,real}.json`` with numbered image folders.

This is exactly what the MIS evaluation scripts read (docs/formats.md §5, docs/recipe.md §3.1): a JSON
array of items with the released field names, image paths relative to ``mis_test/``, two PNGs
per item at ``<split>_image/<n>/object1.png`` and ``object2.png``, numbered from 1 in id order
(with ``images_per_sample`` 3 or 4 also ``image_path3`` / ``object3.png``, ...).
The train set is written beside it in the same item shape plus its ``label``, so a user can
diff against the released files; ``id_map.json`` maps each number back to its sample id.
"""

from __future__ import annotations

from pathlib import Path

from mis_data.core.records import scrub_template_tokens
from mis_data.core.samples import Sample
from mis_data.export.common import RunInfo, cell_columns, place_image, write_json
from mis_data.images.store import ImageStore

TEST_FIELDS = ("id", "category", "sub_category", "question", "image_path1", "image_path2")


def write_split(samples: list[Sample], split: str, folder: Path, store: ImageStore,
                with_label: bool) -> dict[int, str]:
    """One ``mis_<split>.json`` and its images, numbered from 1 in sample-id order; returns number -> sample
    id."""
    items, numbers = [], {}
    for number, sample in enumerate(sorted(samples, key=lambda s: s.id), start=1):
        paths = []
        for slot, image in enumerate(sample.images, start=1):
            relative = f"{split}_image/{number}/object{slot}.png"
            place_image(store, image.sha256, folder / relative)
            paths.append(relative)
        # The released field names, in the released order (docs/recipe.md §3.1); a sample with
        # more images continues the numbering (image_path3, object3.png).
        item = {"id": number, "category": sample.category, "sub_category": sample.sub_category,
                "question": scrub_template_tokens(sample.question),
                **{f"image_path{slot}": path for slot, path in enumerate(paths, start=1)}}
        if with_label:
            item["label"] = scrub_template_tokens(sample.label or "")
        item.update(cell_columns(sample))  # after the released fields; only with twins
        items.append(item)
        numbers[number] = sample.id
    write_json(folder / f"mis_{split}.json", items)
    return numbers


def export_mis(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
               info: RunInfo | None = None) -> None:
    """Easy and hard always (the eval scripts expect both files), real and twins (benign
    counterparts, ``cell`` SiSt→S, for over-refusal) only when they exist."""
    id_map = {}
    for split in ("easy", "hard", "real", "twins"):
        if splits.get(split) or split in ("easy", "hard"):
            id_map[split] = write_split(splits.get(split, []), split, out / "mis_test", store,
                                        with_label=False)
    for split in ("train", "val"):
        if splits.get(split):
            id_map[split] = write_split(splits[split], split, out / f"mis_{split}", store,
                                        with_label=True)
    write_json(out / "id_map.json", {split: {str(n): sid for n, sid in numbers.items()}
                                     for split, numbers in id_map.items()})
