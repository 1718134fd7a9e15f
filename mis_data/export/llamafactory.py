r"""LLaMA-Factory (and ms-swift) train data: "messages + images" JSONL plus ``dataset_info.json``.

docs/formats.md §2-§3: LLaMA-Factory's documented multimodal sharegpt form, which is also ms-swift's
standard format verbatim, so ``swift sft --dataset export/llamafactory/mis_train.jsonl`` reads
the same file (with ``ROOT_IMAGE_DIR=export/llamafactory`` for the relative image paths).
The user turn is ``<image><image>{question}`` — images first, as the MIS eval prompts Qwen2-VL.
LLaMA-Factory counts ``<image>`` over *all* messages, so generated text is scrubbed of template
tokens; only this exporter writes placeholders.

``mis_train_internvl_style`` is the InternVL record (``Image-1: <image>\nImage-2: <image>\n``
prompt, ``from``/``value`` turns), for training InternVL checkpoints in LLaMA-Factory with the
prompt MIS evaluates InternVL with. It is written *here*, as ``mis_train_internvl_style.jsonl``
with image paths relative to this folder, rather than pointing at ``../internvl/mis_train.jsonl``
as it once did: LLaMA-Factory joins every image path to ``media_dir`` (one folder per run,
``dataset_dir`` by default) and otherwise uses the path as given, relative to the folder
training starts in, so the InternVL file's paths (relative to InternVL's ``root``) could not
load next to ``mis_train`` — tokenization raised ``FileNotFoundError`` for every row.

Image paths are relative to this folder (LLaMA-Factory's default ``media_dir``), or absolute
paths of the published export with ``RunInfo.absolute_paths``, which ms-swift (it resolves
relative paths against the working folder or ``ROOT_IMAGE_DIR``) needs when run from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis_data.core.records import scrub_template_tokens
from mis_data.core.samples import Sample
from mis_data.export import internvl
from mis_data.export.common import (
    SYSTEM_PROMPT,
    RunInfo,
    absolute_paths,
    cell_columns,
    place_sample_images,
    published_folder,
    write_json,
    write_jsonl,
)
from mis_data.images.store import ImageStore

IMAGE_TOKEN = "<image>"
USER_PREFIX = IMAGE_TOKEN * 2  # a two-image sample; one token per image in general
NATIVE_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
               "assistant_tag": "assistant", "system_tag": "system"}
INTERNVL_STYLE = "mis_train_internvl_style"


def record_for(sample: Sample, image_paths: list[str]) -> dict[str, Any]:
    """One ``messages`` + ``images`` record, one ``<image>`` per path before the question."""
    return {
        "id": sample.id,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user",
             "content": IMAGE_TOKEN * len(image_paths) + scrub_template_tokens(sample.question)},
            {"role": "assistant", "content": scrub_template_tokens(sample.label or "")},
        ],
        "images": image_paths,
        **cell_columns(sample),
    }


def native_entry(file_name: str) -> dict[str, Any]:
    """The ``dataset_info.json`` entry that reads ``record_for``'s files with role/content tags."""
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"}, "tags": dict(NATIVE_TAGS)}


def internvl_style_entry(file_name: str) -> dict[str, Any]:
    """The sharegpt entry with the default tags (``from``/``value``, ``human``/``gpt``) of the InternVL
    record."""
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "image"}}


def export_llamafactory(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
                        info: RunInfo | None = None) -> None:
    """``mis_train.jsonl`` (+ ``mis_val.jsonl``), the InternVL-style train file,
    ``images/<id>/object<k>.png`` and ``dataset_info.json``."""
    base = f"{published_folder(out).as_posix()}/" if absolute_paths(info) else ""
    dataset_info: dict[str, Any] = {}
    internvl_style: list[dict[str, Any]] = []
    for split in ("train", "val"):
        samples = sorted(splits.get(split, []), key=lambda s: s.id)
        if not samples and split == "val":
            continue
        rows = []
        for sample in samples:
            paths = [base + path for path in place_sample_images(store, sample, out, "images")]
            rows.append(record_for(sample, paths))
            if split == "train":
                internvl_style.append(internvl.record_for(sample, paths))
        file_name = f"mis_{split}.jsonl"
        write_jsonl(out / file_name, rows)
        dataset_info[f"mis_{split}"] = native_entry(file_name)
    write_jsonl(out / f"{INTERNVL_STYLE}.jsonl", internvl_style)
    dataset_info[INTERNVL_STYLE] = internvl_style_entry(f"{INTERNVL_STYLE}.jsonl")
    write_json(out / "dataset_info.json", dataset_info)
