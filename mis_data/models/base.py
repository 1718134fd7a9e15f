"""The one model interface: a stage sends a structured request and gets a validated object back.

A stage never knows which backend answered. It builds a ``StructuredRequest`` (chat messages whose
image parts name images by sha256, the pydantic model it wants, and an optional ``check`` that
applies the stage's own filters) and receives a ``ModelResult``: either a value or a rejection
with a reason code. Both backends share ``answer_with_feedback``, so the rule "a failed
validation is sent back to the model once, then the item is rejected" holds everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from mis_data.core.records import OUTCOMES, RejectReason


@dataclass(frozen=True)
class TextPart:
    """Words inside a message; kept apart from ``ImagePart`` so images can travel by hash."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image of the run's store, named by hash; bytes are attached only at send time."""

    sha256: str


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn in backend-neutral form; ``wire.py`` turns it into what a server reads only
    when it is sent."""

    role: str
    parts: tuple[TextPart | ImagePart, ...]

    @classmethod
    def text(cls, role: str, text: str) -> ChatMessage:
        """A message of words alone: prompts, the feedback turn and echoed refusals."""
        return cls(role=role, parts=(TextPart(text),))


@dataclass(frozen=True)
class Problem:
    """A failed check: the reason code for the reject and a sentence to send back to the model."""

    reason: RejectReason
    detail: str


Check = Callable[[BaseModel], Problem | None]


@dataclass
class StructuredRequest:
    """What a stage asks of a model.

    ``facts`` carries the record fields the request was built from. Real backends never send
    it (the messages say everything); the offline backend answers from it, because it has no
    language model to read the messages with. ``reframe`` is the prompt file's answer to a
    refusal (why the dataset needs this: to teach models to refuse it), sent once after the
    model declines, before the request goes to a fallback model or is rejected as ``refused``.
    """

    task: str
    role: str
    item_id: str
    messages: list[ChatMessage]
    response_model: type[BaseModel]
    facts: dict[str, Any] = field(default_factory=dict)
    check: Check | None = None
    sub_category: str | None = None
    stage: str = ""
    reframe: str | None = None


@dataclass
class TextRequest:
    """A free-text question: the answer is the result, with no schema and no check.

    ``mis-data eval`` asks the model under test this way, exactly as a user would, so that its
    own words (a refusal included) are what the judge reads.
    """

    role: str
    item_id: str
    messages: list[ChatMessage]
    stage: str = ""
    sub_category: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageRequest:
    """A text-to-image request for one slot of one sample."""

    item_id: str
    prompt: str
    facts: dict[str, Any] = field(default_factory=dict)
    stage: str = "images"
    sub_category: str | None = None


@dataclass
class ModelResult:
    """A validated answer, or why there is none. ``model`` answered (or gave the last word);
    ``declined_by`` lists the models that refused or were blocked before it, in order."""

    value: BaseModel | None = None
    reason: RejectReason | None = None
    detail: str = ""
    model: str = ""
    attempts: int = 1
    declined_by: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when a validated value came back; otherwise ``reason`` says why not."""
        return self.value is not None


@dataclass
class TextResult:
    """The answer to a ``TextRequest``.

    A refusal is an answer: ``text`` holds its words and ``refused`` is set. Only when no answer
    came back (``reason``, e.g. ``api_error`` after the retries) is ``text`` None.
    """

    text: str | None = None
    refused: bool = False
    reason: RejectReason | None = None
    detail: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        """True when an answer came back, a refusal included; a refusal is data for the judge."""
        return self.reason is None and self.text is not None


@dataclass
class ImageResult:
    """The bytes of a generated image, or why there are none; ``declined_by`` lists the image models
    that blocked the prompt before the one named in ``model``."""

    data: bytes | None = None
    reason: RejectReason | None = None
    detail: str = ""
    model: str = ""
    declined_by: list[str] = field(default_factory=list)


@dataclass
class Usage:
    """Counters of one (stage, model); ``add`` sums every field, so each field must be a number."""

    requests: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost_usd: float = 0.0
    refusals: int = 0

    def add(self, other: Usage) -> None:
        """Fold ``other``'s counters into these, field by field."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class OutcomeKey:
    """What outcome counts are grouped by; hashable for a dict key, and its field order is the row
    order of ``as_dict``."""

    stage: str
    task: str
    model: str
    sub_category: str


@dataclass
class ServerUsage:
    """Requests sent to one server of a model, the failed ones, and their total seconds."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0

    def add(self, other: ServerUsage) -> None:
        """Fold ``other``'s counters into these."""
        self.requests += other.requests
        self.errors += other.errors
        self.seconds += other.seconds


@dataclass
class UsageMeter:
    """Tokens, requests and cost per (stage, model), refusals per sub-category, and requests,
    errors and latency per (model, server)."""

    by_stage_model: dict[tuple[str, str], Usage] = field(default_factory=dict)
    refusals_by_sub_category: dict[str, int] = field(default_factory=dict)
    by_server: dict[tuple[str, str], ServerUsage] = field(default_factory=dict)
    outcomes: dict[OutcomeKey, dict[str, int]] = field(default_factory=dict)

    def outcome(self, stage: str, task: str, model: str, sub_category: str | None,
                what: str) -> None:
        """Count one request sent to ``model`` by what became of it (``OUTCOMES``): the
        refusal and block rates per model, step and sub-category that ``stats`` prints."""
        key = OutcomeKey(stage, task, model, sub_category or "(none)")
        counts = self.outcomes.setdefault(key, dict.fromkeys(OUTCOMES, 0))
        counts[what] += 1

    def server(self, model: str, url: str, ok: bool, seconds: float) -> None:
        """Count one request to the server at ``url``: whether it worked (``ok``) and its seconds,
        for the per-server error rate and mean latency."""
        usage = self.by_server.setdefault((model, url), ServerUsage())
        usage.requests += 1
        usage.errors += 0 if ok else 1
        usage.seconds += seconds

    def record(self, stage: str, model: str, usage: Usage) -> None:
        """Add a request's (or a cache hit's) counters to its (stage, model) total, which the cost
        cap and ``usage.json`` read."""
        self.by_stage_model.setdefault((stage, model), Usage()).add(usage)

    def refusal(self, sub_category: str | None) -> None:
        """Count one refusal against the sample's sub-category (``(none)`` when it has none)."""
        key = sub_category or "(none)"
        self.refusals_by_sub_category[key] = self.refusals_by_sub_category.get(key, 0) + 1

    def merge(self, other: UsageMeter) -> None:
        """Add every counter of ``other``: a worker's meter (``executor: ray``) into the
        build's, which ``usage.json``, the cost cap and ``stats`` read."""
        for key, usage in other.by_stage_model.items():
            self.by_stage_model.setdefault(key, Usage()).add(usage)
        for sub, count in other.refusals_by_sub_category.items():
            self.refusals_by_sub_category[sub] = self.refusals_by_sub_category.get(sub, 0) + count
        for server, counts in other.by_server.items():
            self.by_server.setdefault(server, ServerUsage()).add(counts)
        for outcome, tally in other.outcomes.items():
            mine = self.outcomes.setdefault(outcome, dict.fromkeys(OUTCOMES, 0))
            for what, count in tally.items():
                mine[what] = mine.get(what, 0) + count

    def take(self) -> UsageMeter:
        """Everything counted so far, moved to a new meter; this one starts again from zero
        (how a worker hands over what its items cost)."""
        taken = UsageMeter(self.by_stage_model, self.refusals_by_sub_category, self.by_server,
                           self.outcomes)
        self.by_stage_model, self.refusals_by_sub_category = {}, {}
        self.by_server, self.outcomes = {}, {}
        return taken

    @property
    def total(self) -> Usage:
        """Every (stage, model) summed: what the cost cap compares with ``--max-cost``."""
        total = Usage()
        for usage in self.by_stage_model.values():
            total.add(usage)
        return total

    def as_dict(self) -> dict[str, Any]:
        """The meter as JSON-ready rows, sorted so the same usage always writes the same file
        (``record_usage`` keeps it in ``usage.json``)."""
        rows = [
            {"stage": stage, "model": model, **vars(usage)}
            for (stage, model), usage in sorted(self.by_stage_model.items())
        ]
        servers = [
            {"model": model, "server": url, "requests": usage.requests, "errors": usage.errors,
             "mean_latency_s": round(usage.seconds / usage.requests, 4) if usage.requests else 0.0}
            for (model, url), usage in sorted(self.by_server.items())
        ]
        outcomes = [{**vars(key), **counts} for key, counts in sorted(
            self.outcomes.items(), key=lambda item: tuple(vars(item[0]).values()))]
        return {
            "by_stage_model": rows,
            "total": vars(self.total),
            "refusals_by_sub_category": dict(sorted(self.refusals_by_sub_category.items())),
            "by_server": servers,
            "outcomes": outcomes,
        }


class ModelClient(Protocol):
    """What every backend provides; stages depend on this and nothing else."""

    name: str
    usage: UsageMeter

    async def structured(self, request: StructuredRequest) -> ModelResult:
        """Answer a structured request. Failures of the item come back as a ``ModelResult`` reason;
        only the build-stopping errors (``BudgetExceeded``, ``ProviderUnusable``, ``ServersDown``)
        are raised."""

    async def complete(self, request: TextRequest) -> TextResult:
        """Answer free text as a user would be answered (the rewrite stage's responder); a
        refusal is an answer (``refused`` set), not a failure."""

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """Draw one image; a block or a failure is an ``ImageResult`` reason, not an exception."""

    def model_name(self, role: str) -> str:
        """The model behind ``role``, as records and stats name it."""

    async def aclose(self) -> None:
        """Release connections and files; the client is unusable afterwards."""


class TextClient(Protocol):
    """A backend that also answers free text (``OpenAIClient`` and the eval's offline model)."""

    name: str
    usage: UsageMeter

    async def complete(self, request: TextRequest) -> TextResult:
        """Answer free text; a refusal is an answer (``refused`` set), not a failure."""

    async def structured(self, request: StructuredRequest) -> ModelResult:
        """Answer a structured request, as ``ModelClient.structured``."""

    def model_name(self, role: str) -> str:
        """The model behind ``role``, as records and stats name it."""

    async def aclose(self) -> None:
        """Release connections and files; the client is unusable afterwards."""


class BudgetExceeded(Exception):
    """The next request would pass ``--max-cost``; the build stops cleanly before it."""


class ProviderUnusable(Exception):
    """The server refuses every request of a model (a wrong key, a model it does not serve):
    the build stops with one line instead of rejecting every item the same way."""


class ServersDown(Exception):
    """Every server of a role has refused connections or timed out for ``all_down_seconds``:
    the build (or eval) stops, keeping what is finished, instead of stalling in silence."""


# A reply is either text to parse, a refusal, or a failure that ends the item.
@dataclass
class RawReply:
    """One attempt's reply as ``answer_with_feedback`` sees it, whatever the backend: exactly one of
    ``text`` (to parse), ``parsed`` (already a value), ``refusal`` or ``failure`` is set."""

    text: str | None = None
    refusal: str | None = None
    parsed: BaseModel | None = None
    failure: RejectReason | None = None
    detail: str = ""


def extract_json(text: str) -> Any:
    """Find the JSON object in a reply: bare, in a code fence, or with prose around it."""
    stripped = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", stripped, re.DOTALL)
    candidates = [stripped]
    if fence:
        candidates.insert(0, fence.group(1).strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object found in the reply")


def parse_reply(text: str, response_model: type[BaseModel]) -> BaseModel:
    """Validate reply text against the wanted model; raises ValueError with a short reason."""
    try:
        return response_model.model_validate(extract_json(text))
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "reply"
        raise ValueError(f"{location}: {first['msg']} ({error.error_count()} error(s))") from None


def feedback_message(problem: str) -> ChatMessage:
    """The turn that sends a failed validation back to the model, asking for one JSON object again."""
    return ChatMessage.text(
        "user",
        "Your previous answer was not usable: "
        f"{problem}\nAnswer again, following every instruction, as a single JSON object.",
    )


Attempt = Callable[[list[ChatMessage]], Awaitable[RawReply]]


async def answer_with_feedback(
    request: StructuredRequest, attempt: Attempt, model: str
) -> ModelResult:
    """Ask, validate, run the stage's check; on failure send the problem back once.

    A refusal is answered once with the prompt file's research framing (``request.reframe``),
    when it has one; a second refusal, a provider's block or a transport failure ends the item:
    asking again in a loop would only spend money on the same answer.
    """
    messages = list(request.messages)
    last_problem = Problem(RejectReason.invalid_output, "no answer")
    feedback_left, reframe_left, attempts = True, bool(request.reframe), 0
    while True:
        attempts += 1
        reply = await attempt(messages)
        if reply.failure is not None:
            return ModelResult(reason=reply.failure, detail=reply.detail, model=model,
                               attempts=attempts)
        if reply.refusal:
            if reframe_left:
                reframe_left = False
                messages += [ChatMessage.text("assistant", reply.refusal),
                             ChatMessage.text("user", request.reframe or "")]
                continue
            return ModelResult(reason=RejectReason.refused, detail=reply.refusal[:300],
                               model=model, attempts=attempts)
        value = reply.parsed
        if value is None:
            try:
                value = parse_reply(reply.text or "", request.response_model)
            except ValueError as error:
                last_problem = Problem(RejectReason.invalid_output, str(error))
                value = None
        if value is not None:
            problem = request.check(value) if request.check else None
            if problem is None:
                return ModelResult(value=value, model=model, attempts=attempts)
            last_problem = problem
        if not feedback_left:
            return ModelResult(reason=last_problem.reason, detail=last_problem.detail,
                               model=model, attempts=attempts)
        feedback_left = False
        if reply.text:
            messages.append(ChatMessage.text("assistant", reply.text))
        messages.append(feedback_message(last_problem.detail))
