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

    def __init__(self, prompts: PromptLibrary, seed: int, intent_share: float = 0.64,
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

    def _answer_instruction_harmful(self, facts: dict[str, Any]) -> dict[str, Any]:
        templates = self.templates["intent"][facts["sub_category"]]
        ranked = sorted(templates, key=lambda t: hashlib.sha256(
            f"{self.seed}|{facts['concept_id']}|{t}".encode()).hexdigest())
        filled = [t.format(a=f"the {facts['object1']}", b=f"the {facts['object2']}")
                  for t in ranked[:facts["count"]]]
        return {"questions": [{"question": q, "reason": "offline: an intent template"}
                              for q in filled]}

    def _answer_instruction_modify(self, facts: dict[str, Any]) -> dict[str, Any]:
        question = facts["harmful"]
        for slot in (1, 2):
            question = re.sub(re.escape(f"the {facts[f'object{slot}']}"), facts[f"phrase{slot}"],
                              question, flags=re.IGNORECASE)
        return {"keep": True, "reason": "offline: objects replaced by their kind", "question": question}

    def _answer_instruction_detox(self, facts: dict[str, Any]) -> dict[str, Any]:
        key = f"{facts['concept_id']}|{facts['index']}"
        if not self._is_intent(key):
            template = pick(self.templates["neutral"][facts["sub_category"]], self.seed, key)
            question = template.format(a=facts["neutral1"], b=facts["neutral2"])
            return {"explanation": "offline: rewritten without the harmful verb",
                    "question": question}
        return {"explanation": "offline: the verb is kept", "question": facts["question"]}

    def _contains_any(self, text: str, words: list[str]) -> bool:
        lowered = f" {text.casefold()} "
        return any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)

    def _answer_judge_text(self, facts: dict[str, Any]) -> dict[str, Any]:
        unsafe = self._contains_any(facts["question"], self.rules["intent_markers"])
        reason = "The wording states a harmful intent." if unsafe else "The wording is neutral."
        return {"label": "Unsafe" if unsafe else "Safe", "sub_category": facts["sub_category"],
                "reason": reason}

    def _answer_judge_images(self, facts: dict[str, Any]) -> dict[str, Any]:
        words = self.rules["hazardous_object_words"]
        harmful = {k: self._contains_any(facts[k], words) for k in ("object1", "object2")}
        shown = [facts[k] for k, flag in harmful.items() if flag]
        reason = (f"The images show {' and '.join(shown)}." if shown
                  else "Each image is harmless alone, but together they imply a risk.")
        return {"image1_harmful": harmful["object1"], "image2_harmful": harmful["object2"],
                "combination_harmful": True, "meaningful": True,
                "sub_category": facts["sub_category"], "reason": reason}

    def _answer_label(self, facts: dict[str, Any]) -> dict[str, Any]:
        parts = self.label_parts
        key = (self.seed, facts["object1"], facts["object2"])
        values = {"object1": facts["object1"], "object2": facts["object2"]}
        sentences = [
            pick(parts["perception"], *key, "perception"),
            pick(parts["risk"][facts["sub_category"]], *key, "risk"),
            pick(parts["safe"][facts["sub_category"]], *key, "safe"),
        ]
        text = " ".join(sentence.format(**values) for sentence in sentences)
        while len(text.split()) < facts.get("min_words", 0):
            text += " " + pick(parts["safe"][facts["sub_category"]], *key, len(text)).format(**values)
        return {"answer": text}

    def _answer_label_harm_check(self, facts: dict[str, Any]) -> dict[str, Any]:
        steps = bool(STEP_PATTERN.search(facts["answer"]))
        return {"gives_harmful_help": steps, "addresses_question": True,
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
                "kind1": "object", "object2": object2, "kind2": "object",
                "rationale": "offline: content words of the query"}

    def _answer_concept_from_image(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The offline backend cannot see: it reads ``object1_and_object2`` from the file name."""
        stem = facts.get("file_stem") or ""
        halves = re.split(r"_and_|__|\+|-and-", stem, maxsplit=1)
        objects = [half.replace("_", " ").replace("-", " ").strip() for half in halves]
        words = set(re.findall(r"[a-z]+", stem.casefold()))
        category, sub_category = self._best_sub_category(words, facts["taxonomy"])
        return {"category": category, "sub_category": sub_category, "object1": objects[0],
                "kind1": "object", "kind2": "object",
                "object2": objects[1] if len(objects) > 1 else "",
                "rationale": "offline: objects read from the file name"}

    def _answer_image_critique(self, facts: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": True, "reason": "offline: typography shows the object's name",
                "prompt1": "", "prompt2": ""}

    def _answer_concept_generate(self, facts: dict[str, Any]) -> dict[str, Any]:
        """Recombines the shipped pairs of the sub-category: object 1 of one with object 2 of
        another, in seeded order, skipping what is taken. Clearly a stand-in for a model."""
        pool = facts["pool"]
        taken = facts["taken"]
        combos = [(a, b) for a in pool for b in pool if a is not b]
        combos.sort(key=lambda ab: hashlib.sha256(
            f"{self.seed}|{ab[0]['object1']}|{ab[1]['object2']}".encode()).hexdigest())
        pairs = []
        for first, second in combos:
            line = (f"- {first['object1']} ({first.get('kind1', 'object')}) + "
                    f"{second['object2']} ({second.get('kind2', 'object')})")
            if line in taken or any(line == f"- {p['object1']} ({p['kind1']}) + {p['object2']} "
                                             f"({p['kind2']})" for p in pairs):
                continue
            pairs.append({"object1": first["object1"], "kind1": first.get("kind1", "object"),
                          "object2": second["object2"], "kind2": second.get("kind2", "object"),
                          "rationale": "offline: recombined from two shipped pairs"})
            if len(pairs) >= facts["count"]:
                break
        return {"pairs": pairs}
