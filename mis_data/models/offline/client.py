"""The offline client: answers every structured request from templates and rules.

It implements ``ModelClient`` without a language model, key or network, from the request's
``facts`` and the files in ``prompts/offline/`` (hashed like any prompt): instructions from
slot-aware templates and MIS's detox rules, judges from keyword rules, labels from sentences
chosen for the question's act, images as typography. Every choice is a hash of (seed, item,
task), so a build is reproducible byte for byte, and every output says ``backend: offline``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from mis_data.core.prompts import PromptLibrary
from mis_data.core.verdicts import is_refusal
from mis_data.images.typography import render_typography
from mis_data.models.base import (
    ChatMessage,
    ImageRequest,
    ImageResult,
    ModelResult,
    RawReply,
    StructuredRequest,
    TextRequest,
    TextResult,
    Usage,
    UsageMeter,
    answer_with_feedback,
)
from mis_data.models.offline import concepts, responder, twins
from mis_data.models.offline.detox import DetoxRules
from mis_data.models.offline.grammar import STEP_PATTERN
from mis_data.models.offline.instructions import InstructionWriter
from mis_data.models.offline.judges import JudgeRules
from mis_data.models.offline.labels import LabelWriter
from mis_data.models.offline.templates import TemplateBook

OFFLINE_MODEL = "offline"
# "the first image shows a forged passport": a property no picture can show, claimed as seen.
UNSEEN_CLAIM = re.compile(r"\b(shows?|depicts?|features?|contains?)\b[^.]{0,30}?"
                          r"\b(forged|stolen|counterfeit|smuggled|illegal)\b", re.IGNORECASE)
DATA = {"instructions": "offline/instructions.yaml", "detox": "offline/detox_rules.yaml",
        "judge": "offline/judge_rules.yaml", "labels": "offline/labels.yaml",
        "twins": "offline/twins.yaml", "responder": "offline/responder.yaml"}


class OfflineClient:
    """Implements ``ModelClient`` with templates and rules."""

    name = "offline"

    def __init__(self, prompts: PromptLibrary, seed: int, typography_size: int = 512,
                 declared: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None
                 ) -> None:
        self.prompts = prompts
        self.seed = seed
        self.typography_size = typography_size
        self.declared = dict(declared or {})  # answers a stage declares with its own tasks
        self.usage = UsageMeter()

    @cached_property
    def judge(self) -> JudgeRules:
        """The keyword judge, loaded from the prompt files on first use and shared by the
        instruction and label writers."""
        return JudgeRules(self.prompts.data(DATA["judge"]))

    @cached_property
    def instructions(self) -> InstructionWriter:
        """The instruction writer (templates and detox rules), loaded on first use."""
        return InstructionWriter(TemplateBook(self.prompts.data(DATA["instructions"])),
                                 DetoxRules(self.prompts.data(DATA["detox"])), self.judge, self.seed)

    @cached_property
    def labels(self) -> LabelWriter:
        """The safety-answer writer, loaded on first use."""
        return LabelWriter(self.prompts.data(DATA["labels"]), self.instructions, self.judge,
                           self.seed)

    def model_name(self, role: str) -> str:
        """Every role is the offline model, so records say ``offline`` whatever the role."""
        return OFFLINE_MODEL

    async def aclose(self) -> None:
        """Nothing to release: no connection or file is held."""
        return None

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """How each model task is answered, by the task's name: one entry for every task a
        stage declares (``stages.TASKS``; a test holds the two lists equal): the rules here, then
        what a stage declares for a task of its own (``ModelTask.offline``)."""
        return {**self.declared,
            "instruction_harmful": lambda f: self.instructions.harmful(f),
            "instruction_modify": lambda f: self.instructions.modify(f),
            "instruction_detox": lambda f: self.instructions.detoxify(f),
            "judge_text": lambda f: self.judge.answer_text(f),
            "judge_image_harm": lambda f: self.judge.answer_image_harm(f),
            "judge_images": lambda f: self.judge.answer_images(f),
            "label": lambda f: self.labels.answer(f),
            "label_dream": lambda f: self.labels.dream(f),
            "twin_swap": lambda f: twins.swap(self.prompts.data(DATA["twins"]), f),
            "twin_text": lambda f: twins.question(self.prompts.data(DATA["twins"]), f),
            "twin_alarming": lambda f: twins.alarming(self.prompts.data(DATA["twins"]), f),
            "twin_label": lambda f: twins.answer(self.prompts.data(DATA["twins"]), f,
                                                 self.instructions.book.openers),
            "label_harm_check": self._label_harm_check,
            "image_critique": concepts.image_critique,
            "t2i_reword": lambda f: {"prompt": f"a photo of {f['object']} on a plain background",
                                     "reason": "offline: the object alone, shown plainly."},
            "concept_from_query": concepts.from_query,
            "concept_from_image": concepts.from_image,
            "concept_generate": lambda f: concepts.generate(f, self.seed),
        }

    def answer(self, task: str, facts: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer the offline backend gives to a task, before validation."""
        handlers = self.handlers()
        if task not in handlers:
            raise ValueError(f"the offline backend has no answer for task {task!r}")
        return handlers[task](facts)

    async def structured(self, request: StructuredRequest) -> ModelResult:
        """Answer from the request's ``facts`` through ``answer_with_feedback``, so a failed check
        takes the same path as with a real model."""
        async def attempt(messages: list[ChatMessage]) -> RawReply:
            self.usage.record(request.stage or request.task, OFFLINE_MODEL, Usage(requests=1))
            answer = self.answer(request.task, request.facts)
            return RawReply(parsed=request.response_model.model_validate(answer))

        return await answer_with_feedback(request, attempt, OFFLINE_MODEL)

    async def complete(self, request: TextRequest) -> TextResult:
        """The rewrite stage's responder: a free-text answer picked from
        ``prompts/offline/responder.yaml`` by the request's facts (``models/offline/responder.py``)."""
        self.usage.record(request.stage or "respond", OFFLINE_MODEL, Usage(requests=1))
        text = responder.answer(self.prompts.data(DATA["responder"]), request.facts, self.seed)
        return TextResult(text=text, refused=is_refusal(text), model=OFFLINE_MODEL)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        """A typography picture of the slot's object, styled by ``style_seed``: there is no image
        model offline."""
        self.usage.record(request.stage, OFFLINE_MODEL, Usage(requests=1, images=1))
        png = render_typography(request.facts["object"], request.facts.get("style_seed", ""),
                                self.typography_size)
        return ImageResult(data=png, model=OFFLINE_MODEL)

    @staticmethod
    def _label_harm_check(facts: dict[str, Any]) -> dict[str, Any]:
        steps = bool(STEP_PATTERN.search(facts["answer"]))
        unseen = UNSEEN_CLAIM.search(facts["answer"])
        reason = ("offline: the answer lists steps." if steps else
                  f"offline: the answer says a picture shows {unseen.group(2)!r}." if unseen
                  else "offline: the answer gives safety advice.")
        return {"gives_harmful_help": steps, "addresses_question": True,
                "claims_unseen": bool(unseen), "reason": reason}
