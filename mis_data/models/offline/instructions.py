"""MIS step 2 offline: harmful drafts -> objects replaced -> detoxified (docs/recipe.md §1).

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
from functools import lru_cache
from typing import Any

from mis_data.core.records import normalize_object
from mis_data.core.wording import ordinal_image
from mis_data.models.offline.detox import DetoxRules, Reference
from mis_data.models.offline.grammar import PREPOSITIONS, definite, ranked, stable_int
from mis_data.models.offline.judges import JudgeRules, slot_count
from mis_data.models.offline.templates import (
    Draft,
    Filler,
    Template,
    TemplateBook,
    object_filler,
    phrase_filler,
    render,
)

# Words too general to count as naming an object when a template happens to contain them.
GENERIC = frozenset("""
    object tool weapon substance container device vehicle document text symbol clothing food
    animal person group place structure scene image first second people thing things
""".split())  # noqa: SIM905


@dataclass(frozen=True)
class PairForms:
    """The fillers of one concept's objects (two or more) in each form (names; kind phrases)."""

    named: tuple[Filler, ...]
    replaced: tuple[Filler, ...]
    references: tuple[Reference, ...]


def slots(facts: Mapping[str, Any]) -> range:
    """The facts' slot numbers, 1-based, one per object."""
    return range(1, slot_count(facts) + 1)


def kinds_of(facts: Mapping[str, Any]) -> tuple[str, ...]:
    """The objects' kinds in slot order."""
    return tuple(facts[f"kind{slot}"] for slot in slots(facts))


def names_of(facts: Mapping[str, Any]) -> str:
    """The objects' names joined with spaces, for a template's topic check."""
    return " ".join(facts[f"object{slot}"] for slot in slots(facts))


def named_fillers(book: TemplateBook, facts: Mapping[str, Any]) -> tuple[Filler, ...]:
    """The objects by name ("the crowbar"), as the harmful draft and the label use them."""
    return tuple(object_filler(facts[f"object{slot}"], facts[f"kind{slot}"], book.human)
                 for slot in slots(facts))


def pair_forms(book: TemplateBook, facts: Mapping[str, Any]) -> PairForms:
    """The concept's objects as named fillers, as kind-phrase fillers and as detox references
    (living kinds marked for rule 3)."""
    animate = book.groups.get("animate", book.human)
    kinds = kinds_of(facts)
    replaced = tuple(phrase_filler(facts[f"phrase{slot}"], kinds[slot - 1], book.human)
                     for slot in slots(facts))
    references = tuple(Reference(facts[f"phrase{slot}"], facts.get(f"neutral{slot}")
                                 or facts[f"phrase{slot}"], kinds[slot - 1] in animate)
                       for slot in slots(facts))
    return PairForms(named_fillers(book, facts), replaced, references)


def object_words(name: str) -> set[str]:
    """An object name's telling words, singular as the stage's ``object_leak`` check sees them
    ("identities" -> "identity"), so no draft the stage would reject is chosen."""
    return set(_object_words(name))


@lru_cache(maxsize=65536)
def _object_words(name: str) -> frozenset[str]:
    words = normalize_object(" ".join(re.findall(r"[a-z]+", name.casefold().replace("'s", "")))).split()
    return frozenset(word for word in words
                     if len(word) >= 4 and word not in GENERIC and word not in PREPOSITIONS)


@lru_cache(maxsize=65536)
def _draft_words(fixed: frozenset[str], opener: str) -> frozenset[str]:
    """The normalized words of a template (its ``fixed_words``) and an opener: the same few
    templates and openers meet again for pair after pair."""
    words = fixed | set(re.findall(r"[a-z]+", opener.replace("{body}", " ").casefold()))
    return frozenset(normalize_object(" ".join(sorted(words))).split())


PAIRS_KEPT = 8192  # pairs whose drafts the writer keeps; a later request for an older one redoes them


def remember(kept: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entry beyond ``PAIRS_KEPT``: a pair's
    requests come close together, and a build of many pairs must not keep them all."""
    kept[key] = value
    if len(kept) > PAIRS_KEPT:
        del kept[next(iter(kept))]


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
        self._shares: dict[tuple[str, int], float] = {}
        self._harmful: dict[tuple[tuple[str, Any], ...], bool] = {}

    def any_harmful(self, pair: Mapping[str, Any]) -> bool:
        """The image judge's verdict on a pair (an image harmful on its own), remembered: each
        pair of a sub-category is ranked against all its siblings."""
        key = tuple(sorted(pair.items()))
        if key not in self._harmful:
            self._harmful[key] = any(self.writer.judge.images_harmful(pair))
        return self._harmful[key]

    def share(self, sub: str, count: int) -> float:
        """The veiled share of the sub-category's templates for concepts of ``count`` objects."""
        if (sub, count) not in self._shares:
            templates = [t for t in self.writer.book.for_sub_category(sub)
                         if not t.fallback and len(t.roles) == count]
            veiled = [t for t in templates if not self.writer.judge.unsafe(self.generic_final(t))]
            self._shares[sub, count] = len(veiled) / len(templates) if templates else 0.0
        return self._shares[sub, count]

    def generic_final(self, template: Template) -> str:
        """The template's final text with generic references: people where only living beings
        fit (detox rule 3 depends on it), objects elsewhere."""
        book = self.writer.book
        animate = book.groups.get("animate", book.human)
        fillers, refs = {}, []
        for slot, role in enumerate(template.roles, start=1):
            image = ordinal_image(slot)
            alive = template.slots[role] <= animate
            phrase = f"the {'person' if alive else 'object'} in {image}"
            fillers[role] = Filler(phrase, False, alive)
            refs.append(Reference(phrase, phrase, alive))
        return self.writer.detox.apply(render(template.body, fillers), refs)[0]

    def veiled(self, facts: Mapping[str, Any]) -> bool:
        """Whether this pair leads with veiled wording: its seeded rank among the sub-category's
        pairs with the same image verdict, spread by the veiled share (see the class docstring)."""
        seed = self.writer.seed
        me = {"id": facts["concept_id"], **{f"{name}{slot}": facts[f"{name}{slot}"]
                                             for slot in slots(facts)
                                             for name in ("object", "kind")},
              "style": facts.get("style")}
        pairs = {pair["id"]: pair for pair in facts.get("siblings") or []} | {me["id"]: me}
        harmful = self.any_harmful(me)
        group = ranked([p for p in pairs.values() if self.any_harmful(p) == harmful],
                       lambda p: p["id"], seed, facts["sub_category"], "plan")
        rank = next(index for index, pair in enumerate(group) if pair["id"] == me["id"])
        q = self.share(facts["sub_category"], slot_count(facts))
        return math.floor(rank * q + 1 - q) < math.floor((rank + 1) * q + 1 - q)


class InstructionWriter:
    """Writes the three step-2 answers (harmful drafts, modified, detoxified) from the template
    book; every choice is seeded by ``seed`` and the concept."""

    def __init__(self, book: TemplateBook, detox: DetoxRules, judge: JudgeRules, seed: int) -> None:
        self.book = book
        self.detox = detox
        self.judge = judge
        self.seed = seed
        self.plan = DraftPlan(self)
        # candidates() per (sub-category, concept, objects, kinds): the harmful draft, the modify
        # step and the label all look for the same pair's drafts.
        self._candidates: dict[tuple[Any, ...], tuple[Draft, ...]] = {}
        self._named: dict[tuple[Any, ...], dict[str, Draft]] = {}  # find(): harmful form -> draft

    # -- choosing drafts ---------------------------------------------------------------------
    def opener(self, template: Template, concept_id: str) -> str:
        """The opener around a template's body, chosen by seed, concept and template, so questions
        vary yet a rebuild gives the same ones."""
        return self.book.openers[stable_int(self.seed, concept_id, template.id, "opener")
                                 % len(self.book.openers)]

    def candidates(self, facts: Mapping[str, Any]) -> list[Draft]:
        """The templates that fit the pair and name none of its objects by accident."""
        key = self._pair_key(facts)
        if key not in self._candidates:
            remember(self._candidates, key, tuple(self._candidates_of(facts)))
        return list(self._candidates[key])

    @staticmethod
    def _pair_key(facts: Mapping[str, Any]) -> tuple[Any, ...]:
        """What a pair's candidates and their named questions depend on."""
        return (facts["sub_category"], facts["concept_id"], kinds_of(facts),
                tuple(facts[f"object{slot}"] for slot in slots(facts)))

    def _candidates_of(self, facts: Mapping[str, Any]) -> list[Draft]:
        words = set().union(*(object_words(facts[f"object{slot}"]) for slot in slots(facts)))
        drafts = []
        names = tuple(facts[f"object{slot}"] for slot in slots(facts))
        for template, order in self.book.compatible(facts["sub_category"], *kinds_of(facts),
                                                    names=names):
            draft = Draft(template, order, self.opener(template, facts["concept_id"]))
            if template.about(names_of(facts)) and not self.clashes(draft, words):
                drafts.append(draft)
        return drafts

    @staticmethod
    def clashes(draft: Draft, names: set[str]) -> bool:
        """Whether the draft's own words (template and opener) contain a word of an object's
        name: the question would then name the object once the image references are in."""
        return not _draft_words(draft.template.fixed_word_set, draft.opener).isdisjoint(names)

    def final_text(self, draft: Draft, forms: PairForms) -> str:
        """The question as it ends up after modify and detox, so a draft can be judged before it is
        chosen."""
        return self.detox.apply(draft.question(*forms.replaced), forms.references)[0]

    def choose(self, facts: Mapping[str, Any], count: int) -> list[Draft]:
        """Up to ``count`` drafts: first the one with the planned wording, then the rest, preferring
        that wording, real templates over fallbacks, then the lead's help group."""
        forms = pair_forms(self.book, facts)
        order = ranked(self.candidates(facts), lambda d: d.template.id, self.seed,
                       facts["concept_id"])
        if not order:
            return []
        veiled = self.plan.veiled(facts)
        seen: dict[int, tuple[bool, bool]] = {}  # each draft judged once, for min and for sorted

        def wording(draft: Draft) -> tuple[bool, bool]:
            if id(draft) not in seen:
                off_plan = self.judge.unsafe(self.final_text(draft, forms)) == veiled
                seen[id(draft)] = (off_plan, draft.template.fallback)
            return seen[id(draft)]

        lead = min(order, key=wording)  # the first in seeded order with the planned wording

        def preference(draft: Draft) -> tuple[bool, bool, bool]:
            return (*wording(draft), draft.template.help != lead.template.help)

        rest = sorted((draft for draft in order if draft is not lead), key=preference)
        return [lead, *rest][:count]

    def find(self, facts: Mapping[str, Any], harmful: str) -> Draft | None:
        """The draft whose harmful form is ``harmful`` (the steps after the first see only text)."""
        key = self._pair_key(facts)
        if key not in self._named:  # the modify step and the label both look, for each draft
            named = named_fillers(self.book, facts)
            questions: dict[str, Draft] = {}
            for draft in self.candidates(facts):
                questions.setdefault(draft.question(*named), draft)  # the first draft wins
            remember(self._named, key, questions)
        return self._named[key].get(harmful)

    # -- the three answers -------------------------------------------------------------------
    def harmful(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``instruction_harmful`` answer: the chosen drafts with the objects by name, each with
        the act it asks for."""
        forms = pair_forms(self.book, facts)
        questions = [{"question": draft.question(*forms.named),
                      "reason": f"offline template {draft.template.id}: asks how to "
                                f"{draft.act(*forms.named)}"}
                     for draft in self.choose(facts, int(facts["count"]))]
        return {"questions": questions}

    def modify(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``instruction_modify`` answer: the objects replaced by their kind phrases, or not
        kept when the question states no harmful intent."""
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
        for slot in slots(facts):
            question = re.sub(re.escape(definite(facts[f"object{slot}"])), facts[f"phrase{slot}"],
                              question, flags=re.IGNORECASE)
        return {"keep": True, "question": question,
                "reason": "offline: object names replaced by their kind phrases"}

    def detoxify(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``instruction_detox`` answer: ``DetoxRules`` applied to the replaced question, with
        the changes as the explanation."""
        forms = pair_forms(self.book, facts)
        question, changes = self.detox.apply(facts["question"], forms.references)
        return {"explanation": self.detox.explanation(changes), "question": question}
