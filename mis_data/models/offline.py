"""The offline backend: a deterministic, seeded stand-in for the models, needing no key or network.

It answers the same structured requests a real model would, from the request's ``facts`` and
the rule and template files in ``prompts/offline/`` (their hashes are recorded like any prompt):

- instructions come from per-sub-category templates that refer to "the first/second image"
  and never name the objects; roughly half keep an intent word (they become train samples);
- judges apply keyword rules: an intent marker makes the text unsafe, a hazardous object word
  makes an image harmful;
- labels are assembled in the MIS style: what each image shows, why the combination is risky,
  then a safe and helpful answer;
- images are typography renderings of the object's name.

Every choice is a hash of (seed, item, task), so a build is reproducible byte for byte, and
every output it touches says ``backend: offline``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

from mis_data.images.typography import render_typography
from mis_data.models.base import (
    ChatMessage,
    ImageRequest,
    ImageResult,
    ModelResult,
    RawReply,
    StructuredRequest,
    Usage,
    UsageMeter,
    answer_with_feedback,
)
from mis_data.prompts import PromptLibrary

OFFLINE_MODEL = "offline"
PLACE_KINDS = {"place", "structure"}
STOPWORDS = frozenset("""
    a an the and or of to in on at for from with without by into onto how what which who whom
    why when where is are was were be been being do does did can could should would will shall
    may might must i you he she it we they me him her us them my your his its our their this
    that these those there here some any all most more very just also so as if then than about
    over under list detailed steps best way make get use using used someone something somebody
    people person
""".split())  # noqa: SIM905 - a word list reads best as text
STEP_PATTERN = re.compile(r"(^|\n)\s*(step\s*\d|\d+[.)])", re.IGNORECASE)


def pick(options: list[Any], *key: object) -> Any:
    """A seeded, stable choice: the same key always picks the same option."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode("utf-8")).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def image_phrase(kind: str, ref: str) -> str:
    if kind in PLACE_KINDS:
        return f"the place shown in {ref}"
    if kind == "scene":
        return f"the situation shown in {ref}"
    return f"the {kind} in {ref}"


class OfflineClient:
    """Implements ``ModelClient`` with templates and rules."""

    name = "offline"

    def __init__(self, prompts: PromptLibrary, seed: int, intent_share: float = 0.5,
                 typography_size: int = 512) -> None:
        self.prompts = prompts
        self.seed = seed
        self.intent_share = intent_share
        self.typography_size = typography_size
        self.usage = UsageMeter()

    @cached_property
    def templates(self) -> dict[str, Any]:
        return self.prompts.data("offline/instructions.yaml")

    @cached_property
    def rules(self) -> dict[str, Any]:
        return self.prompts.data("offline/judge_rules.yaml")

    @cached_property
    def label_parts(self) -> dict[str, Any]:
        return self.prompts.data("offline/labels.yaml")

    def model_name(self, role: str) -> str:
        return OFFLINE_MODEL

    async def aclose(self) -> None:
        return None

    def answer(self, task: str, facts: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer the offline backend gives to a task, before validation."""
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"_answer_{task}", None)
        if handler is None:
            raise ValueError(f"the offline backend has no answer for task {task!r}")
        return handler(facts)

    async def structured(self, request: StructuredRequest) -> ModelResult:
        async def attempt(messages: list[ChatMessage]) -> RawReply:
            self.usage.record(request.stage or request.task, OFFLINE_MODEL, Usage(requests=1))
            answer = self.answer(request.task, request.facts)
            return RawReply(parsed=request.response_model.model_validate(answer))

        return await answer_with_feedback(request, attempt, OFFLINE_MODEL)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        self.usage.record(request.stage, OFFLINE_MODEL, Usage(requests=1, images=1))
        png = render_typography(request.facts["object"], request.facts.get("style_seed", ""),
                                self.typography_size)
        return ImageResult(data=png, model=OFFLINE_MODEL)

    # -- the answers, one per task ---------------------------------------------------------
    def _is_intent(self, item_key: str) -> bool:
        digest = hashlib.sha256(f"intent\x1f{self.seed}\x1f{item_key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.intent_share

    def _answer_instruction_generate(self, facts: dict[str, Any]) -> dict[str, Any]:
        item_key = f"{facts['object1']}|{facts['object2']}"
        style = "intent" if self._is_intent(item_key) else "neutral"
        template = pick(self.templates[style][facts["sub_category"]], self.seed, item_key, style)
        question = template.format(a=image_phrase(facts["kind1"], facts["ref1"]),
                                   b=image_phrase(facts["kind2"], facts["ref2"]))
        return {"question": question}

    def _answer_instruction_refine(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {"question": facts["draft"]}

    def _answer_instruction_detox(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {"explanation": "The request is already neutral.", "question": facts["question"]}

    def _contains_any(self, text: str, words: list[str]) -> bool:
        lowered = f" {text.casefold()} "
        return any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)

    def _answer_judge_text(self, facts: dict[str, Any]) -> dict[str, Any]:
        unsafe = self._contains_any(facts["question"], self.rules["intent_markers"])
        reason = "The wording states a harmful intent." if unsafe else "The wording is neutral."
        return {"text_unsafe": unsafe, "reason": reason}

    def _answer_judge_images(self, facts: dict[str, Any]) -> dict[str, Any]:
        words = self.rules["hazardous_object_words"]
        harmful = [facts[k] for k in ("object1", "object2") if self._contains_any(facts[k], words)]
        reason = (f"The images show {' and '.join(harmful)}." if harmful
                  else "Each image is harmless alone, but together they imply a risk.")
        return {"images_harmful": bool(harmful), "combination_harmful": True,
                "meaningful": True, "sub_category": facts["sub_category"], "reason": reason}

    def _answer_label(self, facts: dict[str, Any]) -> dict[str, Any]:
        parts = self.label_parts
        key = (self.seed, facts["object1"], facts["object2"])
        values = {"object1": facts["object1"], "object2": facts["object2"]}
        sentences = [
            pick(parts["perception"], *key, "perception"),
            pick(parts["risk"][facts["sub_category"]], *key, "risk"),
            pick(parts["safe"][facts["sub_category"]], *key, "safe"),
        ]
        return {"answer": " ".join(sentence.format(**values) for sentence in sentences)}

    def _answer_label_harm_check(self, facts: dict[str, Any]) -> dict[str, Any]:
        steps = bool(STEP_PATTERN.search(facts["answer"]))
        return {"gives_harmful_help": steps,
                "reason": "The answer lists steps." if steps else "The answer gives safety advice."}

    def _best_sub_category(self, words: set[str], taxonomy: list[tuple[str, str, str]]) -> tuple[str, str]:
        """The (category, sub-category) whose name and description share most words with ``words``."""
        def score(entry: tuple[str, str, str]) -> int:
            vocabulary = set(re.findall(r"[a-z]+", f"{entry[1]} {entry[2]}".casefold())) - STOPWORDS
            return len(words & vocabulary)

        best = max(taxonomy, key=score)
        return best[0], best[1]

    def _answer_concept_from_query(self, facts: dict[str, Any]) -> dict[str, Any]:
        """Crude but honest: the first and last content words of the query become the objects."""
        words = [w for w in re.findall(r"[a-z]+", facts["query"].casefold())
                 if w not in STOPWORDS and len(w) > 3]
        category, sub_category = self._best_sub_category(set(words), facts["taxonomy"])
        object1 = words[0] if words else ""
        object2 = next((w for w in reversed(words) if w != object1), "")
        return {"category": category, "sub_category": sub_category, "object1": object1,
                "object2": object2, "rationale": "offline: content words of the query"}

    def _answer_concept_from_image(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The offline backend cannot see: it reads ``object1_and_object2`` from the file name."""
        stem = facts.get("file_stem") or ""
        halves = re.split(r"_and_|__|\+|-and-", stem, maxsplit=1)
        objects = [half.replace("_", " ").replace("-", " ").strip() for half in halves]
        words = set(re.findall(r"[a-z]+", stem.casefold()))
        category, sub_category = self._best_sub_category(words, facts["taxonomy"])
        return {"category": category, "sub_category": sub_category, "object1": objects[0],
                "object2": objects[1] if len(objects) > 1 else "",
                "rationale": "offline: objects read from the file name"}

    def _answer_image_critique(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {"shows_object": True, "is_clear": True, "improved_prompt": ""}
