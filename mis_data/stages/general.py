"""General multi-image data mixed into train (MIS mixed 500 M4-Instruct samples, 11.11 %).

Input: the JSONL file of ``general:`` in the config. Output: ``general.jsonl`` (GeneralRecord,
``source: general``); the splits put these samples in train beside the safety samples, so a
model keeps its general multi-image skills. Drops: ``bad_source`` (a row without exactly as many
images as the build's samples (``images_per_sample``, two for MIS), a question and an answer,
or with an image path outside the file's folder),
``bad_image`` (an image that cannot be used). Template tokens such as ``<image>`` in the source
text are removed: the exporters insert their own placeholders.

Rows are ranked by a seeded hash and taken in order until ``count`` are kept, so the same seed
mixes in the same samples. A whole-file stage, written once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.core.ids import stable_id
from mis_data.core.records import (
    GeneralRecord,
    ImageRef,
    RejectReason,
    RejectRecord,
    Step,
    scrub_template_tokens,
    seeded_rank,
)
from mis_data.core.wording import count_word
from mis_data.images.sources import inside
from mis_data.images.store import BadImage
from mis_data.stages.base import BuildContext, Decision, WholeStage

STAGE = Step.general.value


def question_and_answer(row: dict[str, Any]) -> tuple[str, str]:
    """(question, answer) from either flat fields or a human/gpt conversation."""
    if "conversations" in row:
        turns = [turn.get("value", "") for turn in row["conversations"] if isinstance(turn, dict)]
        return (turns[0], turns[1]) if len(turns) >= 2 else ("", "")
    return str(row.get("question", "")), str(row.get("answer", ""))


def read_rows(path: Path) -> list[tuple[str, dict[str, Any] | None]]:
    """Every non-blank line of the general data file as (``file:line``, row); a line that is not a JSON
    object gives None so it can be rejected by its place. Raises ``ConfigError`` when the file is missing."""
    if not path.is_file():
        raise ConfigError(f"{path}: general data file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        rows.append((f"{path.name}:{number}", value if isinstance(value, dict) else None))
    return rows


def convert(ctx: BuildContext, where: str, row: dict[str, Any] | None,
            folder: Path) -> GeneralRecord | RejectRecord:
    """One row as a GeneralRecord with its images stored, or the reject saying why it is unusable."""
    def reject(reason: RejectReason, detail: str) -> RejectRecord:
        return RejectRecord(stage=STAGE, id=where, reason=reason, detail=f"{where}: {detail}")

    if row is None:
        return reject(RejectReason.bad_source, "not a JSON object")
    images = row.get("images", row.get("image"))
    count = ctx.config.images_per_sample
    if not isinstance(images, list) or len(images) != count:
        return reject(RejectReason.bad_source, f"needs exactly {count_word(count)} images"
                      + (" (images_per_sample)" if count != 2 else ""))
    question, answer = (scrub_template_tokens(text) for text in question_and_answer(row))
    if not question or not answer:
        return reject(RejectReason.bad_source, "needs a question and an answer")
    refs = []
    for relative in images:
        path = folder / str(relative)
        if Path(str(relative)).is_absolute() or not inside(folder, path):
            return reject(RejectReason.bad_source, f"image path {relative!r} escapes {folder}")
        try:
            stored = ctx.store.put(path.read_bytes())
        except FileNotFoundError:
            return reject(RejectReason.missing_image, f"image {relative!r} not found")
        except (BadImage, OSError) as error:
            return reject(RejectReason.bad_image, f"image {relative!r}: {error}")
        refs.append(ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height,
                             source=f"general:{relative}"))
    return GeneralRecord(id=stable_id("general", ctx.config.seed, where, question),
                         question=question, answer=answer, source=f"general:{Path(where).name}",
                         **{f"image{slot}": ref for slot, ref in enumerate(refs, start=1)})


class GeneralStage(WholeStage):
    """The general data mixed into train, as a whole-file stage (see the module docstring)."""
    name = Step.general.value

    def idle_note(self) -> str | None:
        """Idle when the config has no ``general:`` section."""
        return None if self.ctx.config.general is not None else "not configured (general:)"

    async def decide(self) -> Decision:
        """Convert rows in seeded order until ``count`` are kept; the rows never reached are neither kept
        nor rejected."""
        settings = self.ctx.config.general
        assert settings is not None
        rows = read_rows(settings.path)
        ranked = sorted(rows, key=lambda item: seeded_rank(self.ctx.config.seed, "general", item[0]))
        kept: list[GeneralRecord] = []
        rejects: list[RejectRecord] = []
        for where, row in ranked:
            if len(kept) >= settings.count:
                break
            result = convert(self.ctx, where, row, settings.path.parent)
            if isinstance(result, RejectRecord):
                rejects.append(result)
            else:
                kept.append(result)
        kept.sort(key=lambda record: record.id)
        return Decision(records=list(kept), rejects=rejects, considered=len(rows))
