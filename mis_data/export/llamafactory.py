"""LLaMA-Factory (and ms-swift) train data: "messages + images" JSONL plus ``dataset_info.json``.

FORMATS.md §2-§3: LLaMA-Factory's documented multimodal sharegpt form, which is also ms-swift's
standard format verbatim, so ``swift sft --dataset export/llamafactory/mis_train.jsonl`` reads
the same file (with ``ROOT_IMAGE_DIR=export/llamafactory`` for the relative image paths).
The user turn is ``<image><image>{question}`` — images first, as the MIS eval prompts Qwen2-VL.
LLaMA-Factory counts ``<image>`` over *all* messages, so generated text is scrubbed of template
tokens; only this exporter writes placeholders.

``dataset_info.json`` also registers the InternVL JSONL (``../internvl/mis_train.jsonl``) under
``mis_train_internvl_style``; that entry needs ``media_dir`` set to the InternVL image root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis_data.export.common import (
    SYSTEM_PROMPT,
    RunInfo,
    place_sample_images,
    write_json,
    write_jsonl,
)
from mis_data.images.store import ImageStore
from mis_data.records import scrub_template_tokens
from mis_data.splits import Sample

USER_PREFIX = "<image><image>"
NATIVE_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system"}


def record_for(sample: Sample, image_paths: list[str]) -> dict[str, Any]:
    return {
        "id": sample.id,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PREFIX + scrub_template_tokens(sample.question)},
            {"role": "assistant", "content": scrub_template_tokens(sample.label or "")},
        ],
        "images": image_paths,
    }


def native_entry(file_name: str) -> dict[str, Any]:
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"}, "tags": dict(NATIVE_TAGS)}


def export_llamafactory(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
                        info: RunInfo | None = None) -> None:
    """``mis_train.jsonl`` (+ ``mis_val.jsonl``), ``images/<id>/object{1,2}.png``, dataset_info."""
    dataset_info: dict[str, Any] = {}
    for split in ("train", "val"):
        samples = sorted(splits.get(split, []), key=lambda s: s.id)
        if not samples and split == "val":
            continue
        rows = [record_for(sample, place_sample_images(store, sample, out, "images"))
                for sample in samples]
        file_name = f"mis_{split}.jsonl"
        write_jsonl(out / file_name, rows)
        dataset_info[f"mis_{split}"] = native_entry(file_name)
    if info is None or "internvl" in info.formats:
        dataset_info["mis_train_internvl_style"] = {
            "file_name": "../internvl/mis_train.jsonl", "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "image"},
        }
    write_json(out / "dataset_info.json", dataset_info)
