"""The records that flow through a build, one model per stage, and the reasons a record is dropped.

Every record has a stable ``id``: the sample id is derived from the build seed and the
normalized concept pair, never from time or random state, so two builds of the same config agree
on every id. Validators here are the filters that need no configuration (template tokens, empty
text, malformed hashes); filters that depend on the config live in their stage.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

# Strings that multimodal training frameworks read as image/video slots (docs/formats.md §0, §8).
# Generated text must never contain them: exporters insert the placeholders themselves.
TEMPLATE_TOKEN_PATTERN = re.compile(
    r"<\s*/?\s*(image|video|audio|img|IMG_CONTEXT)\s*>|<\|[^|>]{1,40}\|>", re.IGNORECASE
)

_ARTICLES = {"a", "an", "the", "some"}

# A sample shows 2 to MAX_IMAGES images (``images_per_sample``); slot k is "the k-th image".
MAX_IMAGES = 4
ORDINALS = ("first", "second", "third", "fourth")
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}

# How a reply that declines begins ("I'm sorry", "I can't", "As an AI"): a model client treats
# such a plain-text reply as a refusal, and a safety label must not open with one.
REFUSAL_OPENER = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry|i apologi[sz]e|my apologies|i can(?:'|no)t|i cannot|"
    r"i won'?t|i will not|i'?m unable|i am unable|as an ai)\b", re.IGNORECASE)


class Step(str, Enum):
    """The steps of a build, in the order they run: the one stage list.

    Each step's output file is ``<value>.jsonl`` (dedup has none: it only rejects). Stages,
    the manifest, stats and the gallery all take names and order from here; the pipeline binds
    each step to its stage class.
    """

    concepts = "concepts"
    instructions = "instructions"
    images = "images"
    pairs = "pairs"
    dedup = "dedup"
    judgements = "judgements"
    labels = "labels"
    twins = "twins"
    real = "real"
    general = "general"


STEP_NAMES = tuple(step.value for step in Step)


class LateStep(str, Enum):
    """Steps after the stages that only take samples out: the rejects of a reviewer's drop and
    of a benchmark match, and the samples the split step leaves out (listed in
    ``splits/manifest.json``). With ``Step`` they are every stage name a run folder knows."""

    review = "review"
    decontamination = "decontamination"
    splits = "splits"


# The steps whose drops ``stats`` shows as rates per sub-category: each decides on samples.
RATED_STEPS = (Step.instructions.value, Step.images.value, Step.dedup.value,
               Step.judgements.value, Step.labels.value, LateStep.review.value)


class RejectReason(str, Enum):
    """Why a record was dropped. One enum so counts never drift from their meaning."""

    duplicate_concept = "duplicate_concept"
    unknown_category = "unknown_category"
    invalid_concept = "invalid_concept"
    bad_source = "bad_source"
    no_risk = "no_risk"
    missing_image_ref = "missing_image_ref"
    object_leak = "object_leak"
    not_detoxified = "not_detoxified"
    too_short = "too_short"
    too_long = "too_long"
    template_token = "template_token"
    invalid_output = "invalid_output"
    refused = "refused"
    blocked = "blocked"
    request_rejected = "request_rejected"
    api_error = "api_error"
    bad_image = "bad_image"
    image_unusable = "image_unusable"
    missing_image = "missing_image"
    act_removed = "act_removed"
    discarded_by_judge = "discarded_by_judge"
    judge_tie = "judge_tie"
    judge_missing = "judge_missing"
    label_no_perception = "label_no_perception"
    label_format = "label_format"
    label_apology = "label_apology"
    harmful_label = "harmful_label"
    label_off_topic = "label_off_topic"
    label_unseen = "label_unseen"
    label_risks = "label_risks"
    over_refusal = "over_refusal"
    twin_still_risky = "twin_still_risky"
    near_duplicate = "near_duplicate"
    contaminated = "contaminated"
    dropped_by_reviewer = "dropped_by_reviewer"
    no_unsafe_response = "no_unsafe_response"
    rewrite_unsafe = "rewrite_unsafe"
    rewrite_refused = "rewrite_refused"


# Reasons given to a sample after it was judged (a benchmark overlap, a reviewer's decision):
# the splits leave such a sample out, and a re-split keeps leaving it out.
AFTER_JUDGING_REASONS = frozenset({RejectReason.contaminated, RejectReason.dropped_by_reviewer})

# Reasons that come from a passing fault rather than from the item: a rerun tries them again.
# ``judge_missing``: a judge failed and the others did not form a majority; a rerun asks the
# failed judge again (the others' answers are cached).
RETRYABLE_REASONS = frozenset({RejectReason.api_error, RejectReason.judge_missing})

# A provider's own verdict on the request (a refusal, a moderation block): final, unless a model
# that has not been asked yet (a fallback added to the config later) can still answer it.
DECLINED_REASONS = frozenset({RejectReason.refused, RejectReason.blocked})

# What became of one request a model was sent (a cached answer is not sent, so not counted).
OUTCOMES = ("answered", "refused", "blocked", "failed")


@lru_cache(maxsize=65536)
def normalize_object(text: str) -> str:
    """Case-, article- and plural-insensitive form of an object phrase, for duplicate checks.

    Kept per text: ids, duplicate checks and the offline backend ask again and again for the
    same few thousand names and template words.
    """
    words = re.findall(r"[a-z0-9]+", text.casefold())
    kept = []
    for word in words:
        if word in _ARTICLES:
            continue
        if len(word) > 3 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
            word = word[:-2]
        elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        kept.append(word)
    return " ".join(kept)


def concept_key(*objects: str) -> str:
    """Order-insensitive key of a concept (two or more objects); the same key is a duplicate."""
    return " | ".join(sorted(normalize_object(obj) for obj in objects))


def seeded_rank(seed: int, purpose: str, key: str) -> str:
    """A stable pseudo-random sort key: independent of input order and of Python's hash seed.

    Every seeded choice of the build (quotas, MIS-real picks, the general mix, validation
    groups) sorts by this, so the same seed always chooses the same items.
    """
    return hashlib.sha256(f"{seed}\x1f{purpose}\x1f{key}".encode()).hexdigest()


def concept_signature(*objects: str) -> str:
    """Order-insensitive head nouns of a concept: "loaded handgun" + "crowded mall" and "handgun"
    + "busy shopping mall" share it, so a generated pair this close to another is a repeat."""
    heads = sorted((normalize_object(obj).split() or [""])[-1] for obj in objects)
    return " | ".join(heads)


def find_template_token(text: str) -> str | None:
    """The first template token in ``text`` (``<image>``, ``<|...|>``), else None: text holding one
    would add image slots of its own to an export."""
    match = TEMPLATE_TOKEN_PATTERN.search(text)
    return match.group(0) if match else None


def scrub_template_tokens(text: str) -> str:
    """Remove template tokens from generated text before export (docs/formats.md §0)."""
    return re.sub(r"[ \t]{2,}", " ", TEMPLATE_TOKEN_PATTERN.sub("", text)).strip()


class OptionalFields(BaseModel):
    """A model whose ``optional_fields`` are left out of its JSON while they are None, so
    records and samples written without an optional feature stay byte-identical to the files
    written before the feature existed."""

    optional_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        for name in self.optional_fields:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class Record(OptionalFields):
    """Base of every stage record: frozen, no unknown fields, and an ``id`` that keys it in its
    stage file (a later record with the same id replaces an earlier one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)


def _no_template_tokens(text: str) -> str:
    token = find_template_token(text)
    if token:
        raise ValueError(f"contains template token {token!r}")
    return text


def numbered(record: BaseModel, prefix: str) -> tuple:
    """The values of ``<prefix>1``, ``<prefix>2``, ... up to the first one that is unset: a
    record's objects, kinds, images or image flags in slot order."""
    values = []
    for slot in range(1, MAX_IMAGES + 1):
        value = getattr(record, f"{prefix}{slot}", None)
        if value is None:
            break
        values.append(value)
    return tuple(values)


class SlotValues:
    """``objects`` and ``images`` in slot order, for a record with ``object<k>`` / ``image<k>``
    fields (two, or up to four with ``images_per_sample``)."""

    @property
    def objects(self) -> tuple[str, ...]:
        """The objects, in slot order, up to the first unset slot."""
        return numbered(self, "object")  # type: ignore[arg-type]

    @property
    def images(self) -> tuple[ImageRef, ...]:
        """The images, in slot order, up to the first unset slot."""
        return numbered(self, "image")  # type: ignore[arg-type]


def _extra_slots_in_order(record: BaseModel, prefix: str) -> None:
    """A third slot only with the second, a fourth only with the third."""
    present = [getattr(record, f"{prefix}{slot}", None) is not None
               for slot in range(1, MAX_IMAGES + 1)]
    if any(later and not earlier for earlier, later in zip(present, present[1:], strict=False)):
        raise ValueError(f"{prefix}3 / {prefix}4 need every {prefix} before them")


class ConceptRecord(SlotValues, Record):
    """Two (or, with ``images_per_sample``, up to four) depictable things whose combination
    carries a risk (MIS step 1). ``object3``/``object4`` are absent from a two-image concept."""

    category: str
    sub_category: str
    object1: str = Field(min_length=1, max_length=120)
    object2: str = Field(min_length=1, max_length=120)
    kind1: str = "object"
    kind2: str = "object"
    source: str
    rationale: str = ""
    object3: str | None = Field(default=None, min_length=1, max_length=120)
    kind3: str | None = None
    object4: str | None = Field(default=None, min_length=1, max_length=120)
    kind4: str | None = None
    round: int | None = Field(default=None, ge=2)  # a top-up round (``targets:``); None is the first
    optional_fields = ("object3", "kind3", "object4", "kind4", "round")

    @field_validator("object1", "object2", "object3", "object4")
    @classmethod
    def _clean_object(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if not normalize_object(value):
            raise ValueError("object is empty after normalization")
        return _no_template_tokens(value)

    @model_validator(mode="after")
    def _slots(self) -> ConceptRecord:
        _extra_slots_in_order(self, "object")
        for slot in (3, 4):
            has_object = getattr(self, f"object{slot}") is not None
            if has_object != (getattr(self, f"kind{slot}") is not None):
                raise ValueError(f"object{slot} and kind{slot} come together")
        return self

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kind of each object, in slot order (``kind1`` and ``kind2`` default to ``object``)."""
        return numbered(self, "kind")[:len(self.objects)]

    @property
    def image_count(self) -> int:
        """How many images a sample of this concept shows: one per object."""
        return len(self.objects)

    @property
    def key(self) -> str:
        """The order-insensitive key two concepts share when they are duplicates (``concept_key``)."""
        return concept_key(*self.objects)


class ImageRecord(Record):
    """One normalized image for one slot of a sample, with how it was made."""

    sample_id: str
    slot: Literal[1, 2, 3, 4]
    object: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    source: str
    model: str | None = None
    prompt: str | None = None
    first_prompt: str | None = None
    prompt_sha256: str | None = None
    rounds: int = Field(default=1, ge=1)
    # refine_blocked: the provider blocked the refined prompts, so the first round's images stay
    critique: Literal["accepted", "refined", "refine_blocked"] | None = None
    critique_reason: str = ""
    blocked: str | None = None  # the provider's block of the prompt before it was reworded
    optional_fields = ("blocked",)


class ImageRef(BaseModel):
    """One image of a pair, by content: the store keeps it as ``images/<sha256[:2]>/<sha256>.png``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    source: str


class PairRecord(SlotValues, Record):
    """A concept joined with its images (two, or up to four): the visual half of a sample."""

    image1: ImageRef
    image2: ImageRef
    variant: Literal["generated", "real"] = "generated"
    image3: ImageRef | None = None
    image4: ImageRef | None = None
    optional_fields = ("image3", "image4")

    @model_validator(mode="after")
    def _slots(self) -> PairRecord:
        _extra_slots_in_order(self, "image")
        return self


class InstructionRecord(Record):
    """One question of a pair, a sample of its own (id ``<pair>-<k>``), with each recorded step
    of MIS step 2: the explicitly harmful question, the same question with its objects replaced
    by image references, and the detoxified ``question`` that ships, each with the model's reason.
    """

    concept_id: str
    index: int = Field(ge=1)
    harmful: str
    harmful_reason: str = ""
    replaced: str
    replace_reason: str = ""
    question: str = Field(min_length=1)
    detox_reason: str = ""
    model: str
    prompt_sha256: dict[str, str] = Field(default_factory=dict)
    # per step (harmful, modify, detox), when not every step was answered by ``model``: a
    # fallback answered what the first model refused
    step_models: dict[str, str] | None = None
    optional_fields = ("step_models",)

    @field_validator("question")
    @classmethod
    def _no_tokens(cls, value: str) -> str:
        return _no_template_tokens(value)


class Vote(OptionalFields):
    """One judge's view of a sample; every vote is kept on the judgement.

    ``text_unsafe`` and ``text_sub_category`` come from the text alone (MIS step 4's filter);
    the image flags, ``meaningful`` and ``sub_category`` from the images with the question.
    ``image3_harmful``/``image4_harmful`` exist only for samples with that many images.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: str
    text_unsafe: bool
    text_sub_category: str = ""
    image1_harmful: bool
    image2_harmful: bool
    combination_harmful: bool
    meaningful: bool
    sub_category: str
    reason: str = ""
    route: Literal["train", "easy", "hard", "discard"]
    image3_harmful: bool | None = None
    image4_harmful: bool | None = None
    optional_fields = ("image3_harmful", "image4_harmful")

    @property
    def image_flags(self) -> tuple[bool, ...]:
        """Whether each image, in slot order, is harmful on its own."""
        return tuple(flag for flag in (self.image1_harmful, self.image2_harmful,
                                       self.image3_harmful, self.image4_harmful)
                     if flag is not None)

    @property
    def images_harmful(self) -> bool:
        """An image shows an explicit harmful element on its own (easy rather than hard)."""
        return any(self.image_flags)


ReviewAction = Literal["keep", "drop", "move", "resolve"]
DropReason = Literal["unreasonable", "meaningless", "duplicate"]


class ReviewDecision(BaseModel):
    """What a person decided about a sample (``<pair>-<k>``) or a whole pair (``<pair>``).

    MIS step 4 has human experts drop unreasonable, meaningless and duplicate pairs before the
    judges' routes are final; here a reviewer does that in the gallery, after the judges. Each
    decision is complete on its own, so the latest one per sample wins and nothing has to be
    merged: ``keep`` (as judged), ``drop`` (with a reason), ``move`` (keep, in another
    sub-category), ``resolve`` (a route for a review-queue tie; ``discard`` drops it). Who and
    when are on every decision, and they stay on the records it changes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200)
    scope: Literal["sample", "pair"] = "sample"
    action: ReviewAction
    reason: DropReason | None = None
    sub_category: str | None = None
    route: Literal["train", "easy", "hard", "discard"] | None = None
    note: str = Field(default="", max_length=2000)
    reviewer: str = Field(min_length=1, max_length=100)
    at: datetime

    @field_validator("reviewer")
    @classmethod
    def _named(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("a reviewer name is needed")
        return value

    @model_validator(mode="after")
    def _complete(self) -> ReviewDecision:
        if self.action == "drop" and self.reason is None:
            raise ValueError("a drop needs a reason (unreasonable, meaningless or duplicate)")
        if self.action == "move" and not self.sub_category:
            raise ValueError("a move needs the sub-category it moves to")
        if self.action == "resolve" and self.route is None:
            raise ValueError("a resolve needs a route (train, easy, hard or discard)")
        if self.action != "drop" and self.reason is not None:
            raise ValueError("only a drop has a reason")
        if self.action != "resolve" and self.route is not None:
            raise ValueError("only a resolve has a route")
        if self.at.tzinfo is None:
            raise ValueError("'at' needs a time zone (e.g. 2026-01-05T10:00:00Z)")
        return self

    @property
    def drops(self) -> bool:
        """True when the sample leaves the dataset (a drop, or a tie resolved to discard)."""
        return self.action == "drop" or self.route == "discard"

    def summary(self) -> str:
        """One line for reject details and the gallery: what, why, who, when."""
        what = {"keep": "kept", "drop": f"dropped ({self.reason})",
                "move": f"moved to {self.sub_category}",
                "resolve": f"resolved to {self.route}"}[self.action]
        scope = " with its whole pair" if self.scope == "pair" else ""
        note = f": {self.note}" if self.note else ""
        return f"{what}{scope} by {self.reviewer} at {self.at.isoformat()}{note}"


class ReviewRecord(Record):
    """The latest decision on one sample that stays in the dataset (``review.jsonl``).

    Samples a reviewer dropped are rejects (``dropped_by_reviewer``) instead, as with every
    stage: records are what was kept, rejects what was not.
    """

    decision: ReviewDecision


class MissingJudge(BaseModel):
    """A judge that gave no vote on a sample (its server failed after the retries, it refused,
    or the provider blocked the request); the other judges decided without it, or could not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    judge: str
    reason: str
    detail: str = ""


class ReviewItem(OptionalFields):
    """A sample the judges could not decide, kept for a person: they split evenly, or a judge
    gave no vote and the others did not form a majority (``missing`` names who)."""

    id: str
    question: str
    votes: list[Vote]
    missing: list[MissingJudge] | None = None
    optional_fields = ("missing",)


class JudgementRecord(Record):
    """Where the judges send a sample: train, easy or hard (MIS step 4).

    ``decision`` is set when a reviewer moved the sample or resolved a tie: the judges' votes
    stay as they were, the route and sub-category follow the person.
    """

    route: Literal["train", "easy", "hard"]
    sub_category: str
    category: str
    moved_from: str | None = None
    votes: list[Vote] = Field(min_length=1)
    decision: ReviewDecision | None = None
    missing: list[MissingJudge] | None = None
    # judgements nobody reviewed, with every judge's vote: as before the fields existed
    optional_fields = ("decision", "missing")

    @property
    def harmful_images(self) -> tuple[bool, ...]:
        """Whether most judges found each image, in slot order, harmful on its own."""
        votes = self.votes
        return tuple(2 * sum(flags) > len(votes)
                     for flags in zip(*(vote.image_flags for vote in votes), strict=True))


RISK_SOURCES = ("image1", "image2", "image3", "image4", "text", "combination")


class RiskStatement(BaseModel):
    """One observed risk of a sample and where it comes from (DREAM's disentangled risks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content: str = Field(min_length=10, max_length=400)
    source: Literal["image1", "image2", "image3", "image4", "text", "combination"]
    category: str = Field(min_length=1, max_length=80)


class LabelRecord(Record):
    """The safety chain-of-thought answer: perception, risk reasoning, safe answer (MIS step 5).

    With ``labels.style: dream`` it also keeps the risk statements the answer was written
    after; ``text`` then opens with them as an "Observed risks" paragraph."""

    text: str = Field(min_length=1)
    model: str
    prompt_sha256: str
    risks: list[RiskStatement] | None = None
    optional_fields = ("risks",)

    @field_validator("text")
    @classmethod
    def _no_tokens(cls, value: str) -> str:
        return _no_template_tokens(value)


class GeneralRecord(SlotValues, Record):
    """A general (not safety) multi-image instruction sample mixed into train, as MIS did, with
    as many images as the build's samples."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    image1: ImageRef
    image2: ImageRef
    source: str
    image3: ImageRef | None = None
    image4: ImageRef | None = None
    optional_fields = ("image3", "image4")


class RejectRecord(OptionalFields):
    """A dropped record: its stage, id, reason code and why. ``models`` names every model that
    declined it (a refusal or a provider's block, the fallbacks included), so a rerun can tell
    whether a model added to the config since could still answer it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    id: str
    reason: RejectReason
    detail: str = ""
    sub_category: str | None = None
    models: list[str] | None = None
    optional_fields = ("models",)


# HoliSafe's cells (image safety, text safety → whole), spelled with plain letters and an arrow:
# MIS train is UiUt (an image harmful) or SiUt, MIS-easy UiSt, MIS-hard SiSt→U, a benign twin SiSt→S.
CELLS = ("UiUt", "UiSt", "SiUt", "SiSt→U", "SiSt→S")
BENIGN_CELL = "SiSt→S"


class TwinRecord(SlotValues, Record):
    """A benign counterpart of sample ``twin_of`` (id ``<sample>~t``): the same pair with one
    object swapped for a harmless look-alike (``swap_image``), the same images with an
    ordinary question (``benign_text``), or a request that sounds risky in words alone with new
    images that make it harmless (``alarming_text``); ``answer`` helps without refusing or
    lecturing."""

    twin_of: str
    kind: Literal["swap_image", "benign_text", "alarming_text"]
    question: str = Field(min_length=1)
    object1: str
    object2: str
    image1: ImageRef
    image2: ImageRef
    swapped: Literal[1, 2, 3, 4] | None = None
    reason: str = ""
    answer: str = Field(min_length=1)
    model: str
    prompt_sha256: dict[str, str] = Field(default_factory=dict)
    object3: str | None = None
    object4: str | None = None
    image3: ImageRef | None = None
    image4: ImageRef | None = None
    # the judges' blind votes on the twin (its question and images); a twin joins only when
    # most of them find the text safe and the combination harmless and meaningful
    votes: list[Vote] | None = None
    missing: list[MissingJudge] | None = None
    optional_fields = ("object3", "object4", "image3", "image4", "votes", "missing")

    @field_validator("question", "answer")
    @classmethod
    def _no_tokens(cls, value: str) -> str:
        return _no_template_tokens(value)


# One source's risk in the rewrite stage's causal report (a reply schema's part: a comment, not
# a docstring, since a docstring would be sent as the schema's description).
class SourceRisk(BaseModel):  # noqa: D101
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["text", "image1", "image2", "image3", "image4", "combination"]
    risk: str = Field(min_length=1, max_length=400)


class RewriteRecord(Record):
    """One row of VLMGuard-R1 rewrite data (``rewrites.jsonl``), for a labelled train sample or
    a benign twin (``kind: keep``, whose prompt stays as it is).

    ``reasoning`` is what the rewriter learns to think before it rewrites (the risk report by
    source and the user's intent); ``features`` (the hindsight analysis), both responses and
    the responder's answer to the rewritten prompt that the judges found safe
    (``gate_response``, with their labels) are kept beside it."""

    kind: Literal["rewrite", "keep"]
    question: str = Field(min_length=1)
    rewritten: str = Field(min_length=1)
    reasoning: str = Field(min_length=1)
    risks: list[SourceRisk]
    safe_response: str
    features: list[str] = Field(default_factory=list)
    intent: str = ""
    unsafe_response: str | None = None
    unsafe_from: Literal["responder"] | None = None  # who answered unsafely
    gate_response: str | None = None
    gate_labels: list[str] | None = None
    model: str = ""
    responder: str | None = None

    @field_validator("rewritten")
    @classmethod
    def _no_tokens(cls, value: str) -> str:
        return _no_template_tokens(value)
