"""MIS step 2 offline: harmful drafts -> objects replaced -> detoxified (MIS_NOTES.md §1).

* **harmful**: the drafts of one pair are *related* questions, as MIS's prompt asks: all of one
  wording, either *open* (a verb the detox rules cannot soften, such as "loot", or a stated
  harmful purpose) or *veiled* (a verb they can soften, such as "break into"), drawn in seeded
  order from the templates that fit the pair's kinds, the lead's act first. One wording per pair
  keeps a pair's samples on one side of the split instead of being excluded as leakage. Which
  pairs lead veiled is spread evenly (see ``DraftPlan``). Fallback templates (broad kinds) are
  used only when the fitting ones run short. Each draft names both objects and states the harm.
* **modify**: a draft with no intent marker carries no risk and is dropped (``no_risk``);
  otherwise its template is rendered again with the kind phrases in place of the objects, so
  pronouns and verbs agree with "the people in the second image", not with the object's name.
* **detox**: ``DetoxRules`` on the replaced text.

Which side a question lands on is then up to the offline text judge, reading the final text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mis_data.models.offline.detox import DetoxRules, Reference
from mis_data.models.offline.grammar import PREPOSITIONS, definite, ranked, stable_int
from mis_data.models.offline.judges import JudgeRules
from mis_data.models.offline.templates import (
    Draft,
    Filler,
    Template,
    TemplateBook,
    object_filler,
    phrase_filler,
    render,
)
from mis_data.records import normalize_object

# Words too general to count as naming an object when a template happens to contain them.
GENERIC = frozenset("""
    object tool weapon substance container device vehicle document text symbol clothing food
    animal person group place structure scene image first second people thing things
""".split())  # noqa: SIM905


@dataclass(frozen=True)
class PairForms:
    """The fillers of one pair in each form (object names; kind phrases)."""

    named: tuple[Filler, Filler]
    replaced: tuple[Filler, Filler]
    references: tuple[Reference, Reference]


def named_fillers(book: TemplateBook, facts: Mapping[str, Any]) -> tuple[Filler, Filler]:
    """The pair's objects by name ("the crowbar"), as the harmful draft and the label use them."""
    return (object_filler(facts["object1"], facts["kind1"], book.human),
            object_filler(facts["object2"], facts["kind2"], book.human))


def pair_forms(book: TemplateBook, facts: Mapping[str, Any]) -> PairForms:
    animate = book.groups.get("animate", book.human)
    kinds = (facts["kind1"], facts["kind2"])
    named = named_fillers(book, facts)
    replaced = tuple(phrase_filler(facts[f"phrase{slot}"], kinds[slot - 1], book.human)
                     for slot in (1, 2))
    references = tuple(Reference(facts[f"phrase{slot}"], facts.get(f"neutral{slot}")
                                 or facts[f"phrase{slot}"], kinds[slot - 1] in animate)
                       for slot in (1, 2))
    return PairForms(named, replaced, references)  # type: ignore[arg-type]


def object_words(name: str) -> set[str]:
    """An object name's telling words, singular as the stage's ``object_leak`` check sees them
    ("identities" -> "identity"), so no draft the stage would reject is chosen."""
    words = normalize_object(" ".join(re.findall(r"[a-z]+", name.casefold().replace("'s", "")))).split()
    return {word for word in words
            if len(word) >= 4 and word not in GENERIC and word not in PREPOSITIONS}


class DraftPlan:
    """Which pairs of a sub-category lead with veiled wording.

    The data decides the proportion: ``q`` is the share of the sub-category's templates whose
    final text reads neutral (rendered with generic references). The plan only spreads it: the
    pairs of the sub-category are split by the image judge's verdict (an image harmful on its
    own, or both ordinary), each group is put in seeded order, and pair ``r`` leads veiled when
    ``floor(r*q + 1 - q) < floor((r+1)*q + 1 - q)`` - evenly spaced, starting with the first.
    So every group, however small, has a veiled pair (which the judges will see as neutral and
    send to MIS-easy or MIS-hard), and each sub-category keeps about ``q`` of its pairs for test.
    """

    def __init__(self, writer: InstructionWriter) -> None:
        self.writer = writer
        self._shares: dict[str, float] = {}

    def share(self, sub: str) -> float:
        if sub not in self._shares:
            templates = [t for t in self.writer.book.for_sub_category(sub) if not t.fallback]
            veiled = [t for t in templates if not self.writer.judge.unsafe(self.generic_final(t))]
            self._shares[sub] = len(veiled) / len(templates) if templates else 0.0
        return self._shares[sub]

    def generic_final(self, template: Template) -> str:
        """The template's final text with generic references: people where only living beings
        fit (detox rule 3 depends on it), objects elsewhere."""
        book = self.writer.book
        animate = book.groups.get("animate", book.human)
        fillers, refs = {}, []
        for role, image in (("a", "the first image"), ("b", "the second image")):
            alive = template.slots[role] <= animate
            phrase = f"the {'person' if alive else 'object'} in {image}"
            fillers[role] = Filler(phrase, False, alive)
            refs.append(Reference(phrase, phrase, alive))
        return self.writer.detox.apply(render(template.body, fillers), refs)[0]

    def veiled(self, facts: Mapping[str, Any]) -> bool:
        judge, seed = self.writer.judge, self.writer.seed
        me = {"id": facts["concept_id"], **{key: facts[key] for key in
                                             ("object1", "object2", "kind1", "kind2")},
              "style": facts.get("style")}
        pairs = {pair["id"]: pair for pair in facts.get("siblings") or []} | {me["id"]: me}
        harmful = any(judge.images_harmful(me))
        group = ranked([p for p in pairs.values() if any(judge.images_harmful(p)) == harmful],
                       lambda p: p["id"], seed, facts["sub_category"], "plan")
        rank = next(index for index, pair in enumerate(group) if pair["id"] == me["id"])
        q = self.share(facts["sub_category"])
        return math.floor(rank * q + 1 - q) < math.floor((rank + 1) * q + 1 - q)


class InstructionWriter:
    def __init__(self, book: TemplateBook, detox: DetoxRules, judge: JudgeRules, seed: int) -> None:
        self.book = book
        self.detox = detox
        self.judge = judge
        self.seed = seed
        self.plan = DraftPlan(self)

    # -- choosing drafts ---------------------------------------------------------------------
    def opener(self, template: Template, concept_id: str) -> str:
        return self.book.openers[stable_int(self.seed, concept_id, template.id, "opener")
                                 % len(self.book.openers)]

    def candidates(self, facts: Mapping[str, Any]) -> list[Draft]:
        """The templates that fit the pair and name none of its objects by accident."""
        names = object_words(facts["object1"]) | object_words(facts["object2"])
        drafts = []
        for template, reverse in self.book.compatible(facts["sub_category"], facts["kind1"],
                                                      facts["kind2"]):
            draft = Draft(template, reverse, self.opener(template, facts["concept_id"]))
            if template.about(f"{facts['object1']} {facts['object2']}") and \
                    not self.clashes(draft, names):
                drafts.append(draft)
        return drafts

    @staticmethod
    def clashes(draft: Draft, names: set[str]) -> bool:
        """Whether the draft's own words (template and opener) contain a word of an object's
        name: the question would then name the object once the image references are in."""
        opener = draft.opener.replace("{body}", " ")
        words = draft.template.fixed_words() | set(re.findall(r"[a-z]+", opener.casefold()))
        return bool(set(normalize_object(" ".join(sorted(words))).split()) & names)

    def final_text(self, draft: Draft, forms: PairForms) -> str:
        return self.detox.apply(draft.question(*forms.replaced), forms.references)[0]

    def choose(self, facts: Mapping[str, Any], count: int) -> list[Draft]:
        forms = pair_forms(self.book, facts)
        order = ranked(self.candidates(facts), lambda d: d.template.id, self.seed,
                       facts["concept_id"])
        if not order:
            return []
        veiled = self.plan.veiled(facts)

        def wording(draft: Draft) -> tuple[bool, bool]:
            off_plan = self.judge.unsafe(self.final_text(draft, forms)) == veiled
            return (off_plan, draft.template.fallback)

        lead = min(order, key=wording)  # the first in seeded order with the planned wording

        def preference(draft: Draft) -> tuple[bool, bool, bool]:
            return (*wording(draft), draft.template.help != lead.template.help)

        rest = sorted((draft for draft in order if draft is not lead), key=preference)
        return [lead, *rest][:count]

    def find(self, facts: Mapping[str, Any], harmful: str) -> Draft | None:
        """The draft whose harmful form is ``harmful`` (the steps after the first see only text)."""
        named = named_fillers(self.book, facts)
        for draft in self.candidates(facts):
            if draft.question(*named) == harmful:
                return draft
        return None

    # -- the three answers -------------------------------------------------------------------
    def harmful(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        forms = pair_forms(self.book, facts)
        questions = [{"question": draft.question(*forms.named),
                      "reason": f"offline template {draft.template.id}: asks how to "
                                f"{draft.act(*forms.named)}"}
                     for draft in self.choose(facts, int(facts["count"]))]
        return {"questions": questions}

    def modify(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        harmful = facts["harmful"]
        found = self.judge.markers(harmful)
        if not found:
            return {"keep": False, "question": "",
                    "reason": "offline: the question states no harmful or risky intent"}
        forms = pair_forms(self.book, facts)
        draft = self.find(facts, harmful)
        if draft is not None:
            return {"keep": True, "question": draft.question(*forms.replaced),
                    "reason": f"offline: objects replaced by their kind phrases; "
                              f"kept the verbs ({', '.join(found)})"}
        question = harmful  # not one of ours: replace the names as they are written
        for slot in (1, 2):
            question = re.sub(re.escape(definite(facts[f"object{slot}"])), facts[f"phrase{slot}"],
                              question, flags=re.IGNORECASE)
        return {"keep": True, "question": question,
                "reason": "offline: object names replaced by their kind phrases"}

    def detoxify(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        forms = pair_forms(self.book, facts)
        question, changes = self.detox.apply(facts["question"], forms.references)
        return {"explanation": self.detox.explanation(changes), "question": question}
