"""VLMGuard-R1 rewriter data (``rewrite:``): ``vlmguard_train.jsonl`` (+ ``vlmguard_val.jsonl``),
``images/<id>/object<k>.png`` and ``dataset_info.json``, in the chat format of the LLaMA-Factory
export (docs/formats.md §2), so LLaMA-Factory, ms-swift and ``datasets.load_dataset("json")``
read it as they read ``mis_train.jsonl``.

One row per train-side sample with a rewrite row: the user turn is the images and the original
question, as a user sends them; the assistant turn is the rewriter's output, its reasoning in
``<think>...</think>`` (the risk report by source and the user's intent) and then the rewritten
prompt. A benign twin's assistant turn ends with its question unchanged (``kind: keep``): the
rewriter learns when not to rewrite. Beside the chat columns each row keeps what the rewrite was
made from, with the same columns on every row (empty where a kind has none) so ``datasets``
infers one schema: the hindsight features, the risk report, the safe response (the label), the
unsafe response that was analysed and where it came from, and the responder's answer to the
rewritten prompt that the judges found safe, with their labels.

Test-side samples and their twins get no row: the rewriter's training data never shares a
sample with the test splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from mis_data.export.llamafactory import IMAGE_TOKEN, native_entry
from mis_data.images.store import ImageStore

# The rewriter's system turn: what it is for, not how to judge (that comes from the data).
REWRITER_SYSTEM = ("You rewrite a user's request to a vision-language model so that the model "
                   "answers it safely and helpfully. Think about the risks of the words, of "
                   "each image and of their combination, then give the request to send.")


def assistant_turn(reasoning: str, rewritten: str) -> str:
    """The rewriter's output: its reasoning in ``<think>`` tags, then the prompt to send."""
    return f"<think>\n{reasoning.strip()}\n</think>\n{rewritten.strip()}"


def record_for(sample: Sample, image_paths: list[str]) -> dict[str, Any]:
    """One chat row of rewrite data, with what it was made from as metadata."""
    rewrite = sample.rewrite
    assert rewrite is not None
    question = scrub_template_tokens(sample.question)
    rewritten = question if rewrite.kind == "keep" else scrub_template_tokens(rewrite.rewritten)
    return {
        "id": sample.id,
        "messages": [
            {"role": "system", "content": REWRITER_SYSTEM},
            {"role": "user", "content": IMAGE_TOKEN * len(image_paths) + question},
            {"role": "assistant",
             "content": assistant_turn(scrub_template_tokens(rewrite.reasoning), rewritten)},
        ],
        "images": image_paths,
        "kind": rewrite.kind,
        "question": question,
        "rewritten": rewritten,
        "category": sample.category,
        "sub_category": sample.sub_category,
        "features": list(rewrite.features),
        "risk_report": [{"source": risk.source, "risk": risk.risk} for risk in rewrite.risks],
        "intent": rewrite.intent,
        "safe_response": rewrite.safe_response,
        "unsafe_response": rewrite.unsafe_response or "",
        "unsafe_from": rewrite.unsafe_from or "",
        "gate_response": rewrite.gate_response or "",
        "gate_labels": list(rewrite.gate_labels or []),
        **cell_columns(sample),
    }


def export_vlmguard(splits: dict[str, list[Sample]], store: ImageStore, out: Path,
                    info: RunInfo | None = None) -> None:
    """``vlmguard_<split>.jsonl`` for train (and val when carved), the images and
    ``dataset_info.json``."""
    base = f"{published_folder(out).as_posix()}/" if absolute_paths(info) else ""
    dataset_info: dict[str, Any] = {}
    for split in ("train", "val"):
        samples = sorted((sample for sample in splits.get(split, []) if sample.rewrite),
                         key=lambda sample: sample.id)
        if not samples and split == "val":
            continue
        rows = [record_for(sample, [base + path for path in
                                    place_sample_images(store, sample, out, "images")])
                for sample in samples]
        file_name = f"vlmguard_{split}.jsonl"
        write_jsonl(out / file_name, rows)
        dataset_info[f"vlmguard_{split}"] = native_entry(file_name)
    write_json(out / "dataset_info.json", dataset_info)
