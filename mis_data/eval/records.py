"""The lines of ``responses.jsonl`` and ``judgements.jsonl``, and which of them are final.

Each item gets one line per attempt, appended as soon as it is known (the run folder's
appenders survive kill -9), and the latest line of a key wins. A line that failed on transport
(``api_error``, retries exhausted) is retried by the next run; every other outcome is final,
including the judge's refusals and unusable replies, which are the judge's answer to that item
and are counted as ``judge_failed``, never dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from mis_data.core.records import OptionalFields
from mis_data.core.rundir import complete_lines

RETRYABLE = frozenset({"api_error"})


class LineUsage(BaseModel):
    """Tokens and cost of the request behind one line (zero for the offline backend)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class ResponseLine(OptionalFields):
    """The model under test's answer to one item (a refusal is an answer: ``refused``)."""

    model_config = ConfigDict(extra="forbid")
    # image_path3/4: only items with more than two images; expected: only awareness items
    optional_fields = ("image_path3", "image_path4", "expected")

    key: str
    item_sha256: str  # the question and images answered (``EvalItem.sha256``)
    test_set: str
    split: str
    id: str
    category: str
    sub_category: str
    question: str
    image_path1: str
    image_path2: str
    image_path3: str | None = None
    image_path4: str | None = None
    cell: str | None = None
    expected: str | None = None  # an awareness item's right answer, Yes or No
    response: str | None
    refused: bool = False
    error: str | None = None  # why there is no response: "<reason>: <detail>"
    model: str
    backend: str
    usage: LineUsage = LineUsage()

    @property
    def final(self) -> bool:
        """False for a transport failure the next run retries; any other answer or failure stands."""
        return self.error is None or self.error.split(":")[0] not in RETRYABLE


class JudgementLine(BaseModel):
    """The judge's labels for one response, or why there are none (``reason``)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    item_sha256: str
    test_set: str
    split: str
    id: str
    label_perception: str | None = None
    label_str: str | None = None
    bucket: str | None = None
    reason: str | None = None  # refused | invalid_output | api_error
    detail: str = ""
    judge: str
    backend: str

    @property
    def final(self) -> bool:
        """False for a transport failure the next run retries; labels, refusals and unusable replies stand."""
        return self.reason not in RETRYABLE


LineT = TypeVar("LineT", bound=BaseModel)


def latest(path: Path, model: type[LineT]) -> dict[str, LineT]:
    """The latest complete line per key; a partial last line (a kill mid-write) is ignored."""
    found: dict[str, Any] = {}
    for line in complete_lines(path):
        record = model.model_validate_json(line)
        found[record.key] = record  # type: ignore[attr-defined]
    return found
