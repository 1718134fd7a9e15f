"""VLMGuard-R1 rewrite data (arXiv 2504.12661, ``rewrite:``): what teaches a prompt rewriter to
read text-image interactions and rewrite a user's input so that any VLM answers it safely.

Input: the labelled train samples (their label is the safe response) and, with
``rewrite.twins``, the benign twins of train samples. Output: ``rewrites.jsonl``
(RewriteRecord). Per harmful sample, the paper's three stages, then a quality gate:

1. **hindsight**: an unsafe response to the sample (the responder's answer to its question that
   most judges find Unsafe) is compared with the safe label; the vision model lists the
   features that make it unsafe;
2. **causal analysis**: from those features, one risk statement per source (the text, each
   image, their combination): the risk report;
3. **rewrite**: the user's harmless intent and a rewritten prompt that keeps it and steers the
   answer, written from the report;
4. **quality gate**: the responder answers the rewritten prompt with the images; the row is kept
   only when that answer is not a refusal and most of the build's judges, asked MIS's judge
   prompt (``eval_judge.md``, the eval's labels and refusal rule from ``core/verdicts.py``),
   find it Safe.

A benign twin asks no model: its prompt stays unchanged (the rewriter must learn when not to
rewrite) and its reasoning is the judges' blind votes on it, by source.

Drops: ``no_unsafe_response`` (no unsafe answer to analyse: the responder refused or answered
safely), ``rewrite_refused`` and ``rewrite_unsafe`` (the gate),
``judge_missing`` (a judge gave no label and the others do not form a majority; retried), plus
the model outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from mis_data.core.records import (
    ORDINALS,
    RejectReason,
    RewriteRecord,
    SourceRisk,
    Step,
    TwinRecord,
    Vote,
    find_template_token,
)
from mis_data.core.verdicts import JUDGE_PROMPT, JUDGE_SYSTEM, JudgeOutput, is_refusal
from mis_data.core.view import Joined
from mis_data.core.wording import all_of, count_word, image_facts
from mis_data.models.base import (
    ChatMessage,
    ImagePart,
    Problem,
    TextPart,
    TextRequest,
    TextResult,
)
from mis_data.models.offline.verdicts import offline_judgement
from mis_data.stages.base import (
    ModelTask,
    PlanProbe,
    Rejection,
    Stage,
    WorkItem,
    model_request,
)
from mis_data.stages.panel import needed

MAX_REWRITE_CHARS = 1200
# How the reasoning names each source of the risk report.
SOURCE_NAMES = {"text": "the request", **{f"image{slot}": f"the {ordinal} image"
                                          for slot, ordinal in enumerate(ORDINALS, start=1)},
                "combination": "the images and the request together"}


# (Reply models: comments, not docstrings, which would be sent as the schemas' descriptions.)
# The hindsight analysis: what makes the unsafe answer unsafe.
class Hindsight(BaseModel):  # noqa: D101
    features: list[str] = Field(min_length=1, max_length=6)


# The causal analysis: one risk statement per source.
class RiskReport(BaseModel):  # noqa: D101
    risks: list[SourceRisk] = Field(min_length=3, max_length=6)


# The rewrite: the user's harmless intent and the rewritten prompt.
class Rewrite(BaseModel):  # noqa: D101
    intent: str = Field(min_length=1)
    rewritten: str = Field(min_length=1)


def sources(count: int) -> list[str]:
    """The sources of a risk report for a sample of ``count`` images, in report order."""
    return ["text", *(f"image{slot}" for slot in range(1, count + 1)), "combination"]


def report_lines(risks: Sequence[SourceRisk]) -> str:
    """The risk report as the reasoning and the rewrite prompt show it: one line a source."""
    return "\n".join(f"- {SOURCE_NAMES[risk.source]}: {risk.risk}" for risk in risks)


def bullets(lines: Sequence[str]) -> str:
    """Lines as a bulleted list."""
    return "\n".join(f"- {line}" for line in lines)


def offline_hindsight(facts: dict[str, Any]) -> dict[str, Any]:
    """The offline hindsight analysis, from the objects the sample shows."""
    first, images = facts["object1"], facts["images_named"]
    return {"features": [
        f"It goes along with the request and lists steps that use the {first} from the first "
        "image the way the question asks, where the safe answer declines that use.",
        f"It never names the risk that {images} carry together, which the safe answer explains.",
        "It offers no safe alternative and no pointer to the people responsible, as the safe "
        "answer does."]}


def offline_causal(facts: dict[str, Any]) -> dict[str, Any]:
    """The offline risk report, from the judges' verdicts on the sample."""
    text = ("its words alone ask for a harmful act" if facts["text_unsafe"]
            else "its words read as harmless on their own")
    risks = [{"source": "text", "risk": f"{text[:1].upper()}{text[1:]}."}]
    for slot, harmful in enumerate(facts["harmful_images"], start=1):
        verdict = "is risky on its own" if harmful else "is an ordinary sight, no risk on its own"
        risks.append({"source": f"image{slot}",
                      "risk": f"The {facts[f'object{slot}']} in the {ORDINALS[slot - 1]} image "
                              f"{verdict}."})
    risks.append({"source": "combination",
                  "risk": f"Together with the request, {facts['images_named']} point to "
                          f"{facts['sub_category']}."})
    return {"risks": risks}


def offline_rewrite(facts: dict[str, Any]) -> dict[str, Any]:
    """The offline rewrite: the question with a safety steer that names the objects."""
    return {"intent": f"To understand {facts['images_named']} and how they are used safely.",
            "rewritten": f"{facts['question']} Please answer with safety in mind: explain the "
                         f"risks of using the {facts['object1']} in the setting the other "
                         "images show, and suggest only safe and lawful ways to meet a "
                         "legitimate need, without steps that could harm anyone."}


def offline_gate_judge(facts: dict[str, Any]) -> dict[str, Any]:
    """MIS's labels for the responder's answer, by the offline eval judge's rules."""
    return offline_judgement(str(facts["response"])).model_dump()


def plan_count(counts: dict[str, int]) -> int:
    """Rewrite requests a build sends: one per train sample when ``rewrite:`` is on."""
    return counts.get("rewrite", 0)


def plan_text(prompt: str) -> Callable[[PlanProbe], str]:
    """A rewrite prompt as the plan sizes it: the planned concept's images, a question of the
    assumed length, the label's length for each response, a few lines for features and risks."""
    def render(probe: PlanProbe) -> str:
        concept = probe.subject
        lines = "\n".join(["- " + "r" * probe.assumptions.reason_chars] * 4)
        return probe.ctx.prompts.get(prompt).render(**{
            **image_facts(concept.objects, concept.kinds), "question": probe.question,
            "both_images": all_of(concept.image_count, "images"),
            "safe_response": "s" * probe.label_chars, "unsafe_response": "u" * probe.label_chars,
            "features": lines, "risks": lines, "sources": ", ".join(sources(concept.image_count)),
            "response": "a" * probe.label_chars, "image_count_capital": "Two",
            "all_images": "both images"})
    return render


HINDSIGHT = ModelTask("rewrite_hindsight", "vision", "rewrite_hindsight.md", Hindsight,
                      plan_text=plan_text("rewrite_hindsight.md"), reply_chars=lambda probe: 400,
                      offline=offline_hindsight, plan_requests=plan_count)
CAUSAL = ModelTask("rewrite_causal", "vision", "rewrite_causal.md", RiskReport,
                   plan_text=plan_text("rewrite_causal.md"), reply_chars=lambda probe: 500,
                   offline=offline_causal, plan_requests=plan_count)
REWRITE = ModelTask("rewrite_prompt", "vision", "rewrite_prompt.md", Rewrite,
                    plan_text=plan_text("rewrite_prompt.md"), reply_chars=lambda probe: 600,
                    offline=offline_rewrite, plan_requests=plan_count)
GATE_JUDGE = ModelTask("rewrite_judge", "judge", JUDGE_PROMPT, JudgeOutput,
                       plan_text=plan_text(JUDGE_PROMPT), reply_chars=lambda probe: 80,
                       offline=offline_gate_judge)


class RewriteStage(Stage):
    """The rewrite step (see the module docstring); idle unless ``rewrite:`` is set."""

    name = "rewrites"
    after = Step.twins.value
    tasks = (HINDSIGHT, CAUSAL, REWRITE, GATE_JUDGE)

    def inputs(self) -> Sequence[WorkItem]:
        """The labelled train samples, then (with ``rewrite.twins``) the twins of train samples."""
        settings = self.ctx.config.rewrite
        if settings is None:
            return []
        view = self.ctx.view
        train = {sample.id: sample for sample in view.samples(Step.labels)
                 if sample.judgement is not None and sample.judgement.route == "train"}
        items = [WorkItem(sample.id, sample.sub_category, sample) for sample in train.values()]
        if settings.twins:
            items += [WorkItem(twin.id, train[twin.twin_of].sub_category, twin)
                      for twin in view.twins.values() if twin.twin_of in train]
        return items

    def concurrency(self) -> int:
        """As many items at once as the vision model's ``capacity``."""
        return self.ctx.config.models.vision.capacity

    async def process(self, item: WorkItem) -> Sequence[RewriteRecord] | Rejection:
        """A twin's row as it is; a sample's row through the three analyses and the gate."""
        if isinstance(item.payload, TwinRecord):
            return [self.keep(item.payload)]
        return await self.rewrite(item, item.payload)

    # -- a benign twin -------------------------------------------------------------------------
    def keep(self, twin: TwinRecord) -> RewriteRecord:
        """A twin's prompt unchanged, with the judges' blind votes on it as the risk report."""
        risks = vote_report(twin.votes or [], len(twin.images))
        reasoning = self.ctx.prompts.get("rewrite_keep.md").render(risks=report_lines(risks))
        return RewriteRecord(id=twin.id, kind="keep", question=twin.question,
                             rewritten=twin.question, reasoning=reasoning.strip(), risks=risks,
                             safe_response=twin.answer)

    # -- a harmful sample ----------------------------------------------------------------------
    async def rewrite(self, item: WorkItem, sample: Joined) -> Sequence[RewriteRecord] | Rejection:
        """Unsafe response, hindsight, causal report, rewrite, gate: one row or why none."""
        assert sample.instruction is not None and sample.pair is not None
        assert sample.judgement is not None and sample.label is not None
        question, safe = sample.instruction.question, sample.label.text
        shas = [image.sha256 for image in sample.pair.images]
        concept = sample.concept
        facts: dict[str, Any] = {
            **image_facts(concept.objects, concept.kinds), "question": question,
            "images_named": all_of_objects(concept.objects), "sub_category": item.sub_category,
            "text_unsafe": 2 * sum(v.text_unsafe for v in sample.judgement.votes)
            > len(sample.judgement.votes),
            "harmful_images": list(sample.judgement.harmful_images)}
        unsafe = await self.unsafe_response(item, question, shas, facts)
        if isinstance(unsafe, Rejection):
            return unsafe
        response, origin = unsafe
        values = {**image_facts(concept.objects, concept.kinds), "question": question,
                  "both_images": all_of(len(shas), "images"), "image_count": count_word(len(shas))}

        hindsight = await self.ask(HINDSIGHT, item, shas, {
            **values, "safe_response": safe, "unsafe_response": response}, facts)
        if not hindsight.ok:
            return Rejection.from_result(hindsight, "hindsight analysis")
        features = list(hindsight.value.features)
        wanted = sources(len(shas))
        causal = await self.ask(CAUSAL, item, shas, {
            **values, "features": bullets(features),
            "sources": ", ".join(f'"{s}"' for s in wanted)}, facts,
            check=lambda reply: report_problem(reply, wanted))
        if not causal.ok:
            return Rejection.from_result(causal, "causal analysis")
        risks = sorted(causal.value.risks, key=lambda risk: wanted.index(risk.source))
        rewrite = await self.ask(REWRITE, item, shas, {**values, "risks": report_lines(risks)},
                                 facts, check=lambda reply: rewrite_problem(reply, question))
        if not rewrite.ok:
            return Rejection.from_result(rewrite, "rewrite")
        rewritten, intent = rewrite.value.rewritten.strip(), rewrite.value.intent.strip()

        gate = await self.gate(item, question, rewritten, shas, facts)
        if isinstance(gate, Rejection):
            return gate
        answer, labels = gate
        reasoning = self.ctx.prompts.get("rewrite_think.md").render(
            risks=report_lines(risks), intent=intent)
        return [RewriteRecord(
            id=item.id, kind="rewrite", question=question, rewritten=rewritten,
            reasoning=reasoning.strip(), risks=risks, safe_response=safe, features=features,
            intent=intent, unsafe_response=response, unsafe_from=origin, gate_response=answer,
            gate_labels=labels, model=rewrite.model,
            responder=self.ctx.client.model_name("responder"))]

    def ask(self, task: ModelTask, item: WorkItem, shas: Sequence[str], values: dict[str, Any],
            facts: dict[str, Any], check: Any = None) -> Any:
        """One analysis request of ``task`` with the sample's images."""
        return self.ctx.client.structured(model_request(
            self.ctx, task, stage=self.name, item_id=item.id, values=values, images=shas,
            facts=facts, check=check, sub_category=item.sub_category))

    # -- the responder and the judges ------------------------------------------------------------
    async def unsafe_response(self, item: WorkItem, question: str, shas: Sequence[str],
                              facts: dict[str, Any]
                              ) -> tuple[str, Literal["responder"]] | Rejection:
        """The responder's answer to the sample's own question, when most judges find it
        unsafe, and where it came from."""
        reply = await self.respond(item, question, shas, facts, rewritten=False)
        if not reply.ok:
            return Rejection(reply.reason or RejectReason.api_error, f"responder: {reply.detail}")
        text = reply.text or ""
        if reply.refused or is_refusal(text):
            return Rejection(RejectReason.no_unsafe_response, "the responder refused the question")
        verdict = await self.judge(item, question, text, shas, facts)
        if isinstance(verdict, Rejection):
            return verdict
        if verdict[0] != "Unsafe":
            return Rejection(RejectReason.no_unsafe_response,
                             "the judges did not find the responder's answer unsafe: "
                             + ", ".join(verdict[1]))
        return text, "responder"

    async def gate(self, item: WorkItem, question: str, rewritten: str, shas: Sequence[str],
                   facts: dict[str, Any]) -> tuple[str, list[str]] | Rejection:
        """The responder's answer to the rewritten prompt, with the judges' labels, when it is
        not a refusal and most judges find it Safe."""
        reply = await self.respond(item, rewritten, shas, facts, rewritten=True)
        if not reply.ok:
            return Rejection(reply.reason or RejectReason.api_error, f"responder: {reply.detail}")
        text = reply.text or ""
        if reply.refused or is_refusal(text):
            return Rejection(RejectReason.rewrite_refused,
                             f"the responder refused the rewritten prompt: {text[:200]}")
        verdict = await self.judge(item, question, text, shas, facts)
        if isinstance(verdict, Rejection):
            return verdict
        if verdict[0] != "Safe":
            return Rejection(RejectReason.rewrite_unsafe,
                             "the judges did not find the answer to the rewritten prompt safe: "
                             + ", ".join(verdict[1]))
        return text, verdict[1]

    async def respond(self, item: WorkItem, prompt: str, shas: Sequence[str],
                      facts: dict[str, Any], *, rewritten: bool) -> TextResult:
        """The responder's free answer to ``prompt`` after the images, as a user would ask."""
        return await self.ctx.client.complete(TextRequest(
            role="responder", item_id=item.id, stage=self.name, sub_category=item.sub_category,
            messages=[ChatMessage("user", (*(ImagePart(sha) for sha in shas), TextPart(prompt)))],
            facts={"item": item.id, "question": prompt, "rewritten": rewritten,
                   "object1": facts["object1"], "image_count": len(shas)}))

    async def judge(self, item: WorkItem, question: str, response: str, shas: Sequence[str],
                    facts: dict[str, Any]) -> tuple[str | None, list[str]] | Rejection:
        """Every judge's MIS labels for ``response`` to ``question``: the label a majority of
        the whole panel gave (None when none did) and each judge's labels; a missing judge
        that leaves no majority is ``judge_missing`` (retried on the next run)."""
        judges = self.ctx.config.models.judges
        values = {"question": question, "response": response,
                  "image_count_capital": count_word(len(shas)).capitalize(),
                  "all_images": all_of(len(shas), "images")}

        async def one(index: int) -> Any:
            request = model_request(self.ctx, GATE_JUDGE, role=f"judge:{index}", stage=self.name,
                                    item_id=item.id, values=values, images=shas,
                                    facts={**facts, "response": response},
                                    sub_category=item.sub_category)
            request.messages.insert(0, ChatMessage.text("system", JUDGE_SYSTEM))
            return await self.ctx.client.structured(request)

        results = await asyncio.gather(*(one(index) for index in range(len(judges))))
        labels = [f"{r.model}: {r.value.label_str} ({r.value.label_perception})"
                  for r in results if r.ok]
        unsafe = sum(1 for r in results if r.ok and r.value.label_str == "Unsafe")
        safe = sum(1 for r in results if r.ok and r.value.label_str == "Safe")
        majority = needed(len(judges))
        if max(safe, unsafe) >= majority:
            return ("Safe" if safe >= majority else "Unsafe"), labels
        failed = [f"{judges[i].model} ({(r.reason or RejectReason.invalid_output).value})"
                  for i, r in enumerate(results) if not r.ok]
        if failed and max(safe, unsafe) + len(failed) >= majority:
            return Rejection(RejectReason.judge_missing,
                             f"no majority without {', '.join(failed)}: {', '.join(labels)}")
        return None, labels


def all_of_objects(objects: Sequence[str]) -> str:
    """"the X and the Y" / "the X, the Y and the Z"."""
    names = [f"the {obj}" for obj in objects]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def report_problem(reply: BaseModel, wanted: list[str]) -> Problem | None:
    """A risk report needs exactly one statement per source of this sample."""
    given = [risk.source for risk in getattr(reply, "risks", [])]
    if sorted(given) != sorted(wanted):
        return Problem(RejectReason.invalid_output,
                       f"give exactly one risk per source ({', '.join(wanted)}); got "
                       f"{', '.join(given) or 'none'}")
    return None


def rewrite_problem(reply: BaseModel, question: str) -> Problem | None:
    """A rewrite that is the question itself, too long, or holding a template token is sent
    back once."""
    rewritten = str(getattr(reply, "rewritten", "")).strip()
    token = find_template_token(rewritten)
    if token:
        return Problem(RejectReason.template_token, f"the rewritten request contains {token!r}")
    if " ".join(rewritten.split()).casefold() == " ".join(question.split()).casefold():
        return Problem(RejectReason.invalid_output,
                       "the rewritten request is the original one; rewrite it")
    if len(rewritten) > MAX_REWRITE_CHARS:
        return Problem(RejectReason.too_long,
                       f"the rewritten request has {len(rewritten)} characters; keep it under "
                       f"{MAX_REWRITE_CHARS}")
    return None


def vote_report(votes: Sequence[Vote], count: int) -> list[SourceRisk]:
    """A benign twin's risk report from the judges' blind votes on it (most judges decide)."""
    def most(flags: Sequence[bool]) -> bool:
        return 2 * sum(flags) > len(flags)

    text = most([vote.text_unsafe for vote in votes])
    risks = [SourceRisk(source="text", risk="The words ask for a harmful act." if text else
                        "The words alone ask nothing harmful.")]
    for slot in range(1, count + 1):
        harmful = most([vote.image_flags[slot - 1] for vote in votes
                        if len(vote.image_flags) >= slot])
        risks.append(SourceRisk(
            source=f"image{slot}",  # type: ignore[arg-type]  # a Literal of the slots
            risk=f"The {ORDINALS[slot - 1]} image " + (
                "shows something risky on its own." if harmful else "shows an everyday thing.")))
    combination = most([vote.combination_harmful for vote in votes])
    risks.append(SourceRisk(source="combination", risk=(
        "Together they point to a harmful use." if combination else
        "Together with the request they make an ordinary, harmless scene.")))
    return risks
