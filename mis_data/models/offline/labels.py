"""MIS step 5 offline: a safety answer written for the question (``prompts/offline/labels.yaml``).

One continuous answer in MIS's order (docs/recipe.md §3.3): what each image shows, by name; why
the combination is risky, naming the act the question asks for (the template's ``act``, filled
with the objects); then help that fits that act (the template's ``help`` group of its
sub-category: a lock-out is answered with a locksmith, a weapon threat with ways to stay safe),
closed by an offer from the sub-category. No heading, no apology opener, no steps.

A help group still covers several acts (a break-in of a house and of a car), so an advice line
that only fits some of them says so with ``fits``: word starts, one of which the act or an object
name must contain ("If you are locked out of your own home or car" fits ``home``, ``car`` ...).
A line without ``fits`` must fit every act of its group; each group keeps at least one such harm
line and two such safe lines, so an answer never runs short. Fitting specific lines come first.

A question the backend did not write (a scripted test, a moved sub-category) gets the
sub-category's ``fallback`` act and help.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.core.wording import join_words, ordinal_image, word_count
from mis_data.models.offline.grammar import (
    be,
    capitalize,
    definite,
    indefinite,
    pick,
    ranked,
    second_person,
    tidy,
)
from mis_data.models.offline.instructions import InstructionWriter, named_fillers
from mis_data.models.offline.judges import JudgeRules, slot_count


@dataclass(frozen=True)
class Advice:
    """One advice line of a help group and the word starts of the acts it fits (none: all)."""

    text: str
    fits: tuple[str, ...] = ()

    def fit(self, about: str) -> bool:
        """Whether the line fits a question whose act and object names are ``about`` (lowered)."""
        return not self.fits or any(re.search(rf"\b{word}", about) for word in self.fits)


@dataclass(frozen=True)
class HelpGroup:
    """A help group's harm and safe lines."""

    harm: tuple[Advice, ...]
    safe: tuple[Advice, ...]

    def lines(self) -> tuple[Advice, ...]:
        """Every line of the group, harm first."""
        return (*self.harm, *self.safe)


def parse_advice(entry: Any, where: str) -> Advice:
    """A line as written in labels.yaml: a plain string (fits every act of its group) or
    ``{text: ..., fits: [word starts]}``."""
    if isinstance(entry, str):
        return Advice(entry)
    if not isinstance(entry, Mapping) or not entry.get("text") or not entry.get("fits"):
        raise ConfigError(f"offline labels: {where}: a line is a string or {{text, fits}}")
    return Advice(str(entry["text"]), tuple(str(word).casefold() for word in entry["fits"]))


def help_groups(data: Mapping[str, Any]) -> dict[tuple[str, str], HelpGroup]:
    """Every (sub-category, help group) of labels.yaml, checked to keep enough general lines."""
    groups = {}
    for sub, section in data["sub_categories"].items():
        for name, group in section["helps"].items():
            where = f"{sub} / {name}"
            parsed = HelpGroup(tuple(parse_advice(e, where) for e in group["harm"]),
                               tuple(parse_advice(e, where) for e in group["safe"]))
            if (sum(not a.fits for a in parsed.harm) < 1
                    or sum(not a.fits for a in parsed.safe) < 2):
                raise ConfigError(f"offline labels: {where} needs one harm line and two safe "
                                  "lines without `fits`, so every act of the group is answered")
            groups[sub, name] = parsed
    return groups


def about_text(act: str, facts: Mapping[str, Any]) -> str:
    """What an advice line's ``fits`` is matched against: the act and the object names."""
    names = " ".join(str(facts[f"object{slot}"]) for slot in range(1, slot_count(facts) + 1))
    return f"{act} {names}".casefold()


class LabelWriter:
    """Writes the safety answer (and the dream-style risks) from ``labels.yaml``, asking the
    instruction writer which act the question asks for."""

    def __init__(self, data: Mapping[str, Any], writer: InstructionWriter, judge: JudgeRules,
                 seed: int) -> None:
        self.parts = data
        self.writer = writer
        self.judge = judge
        self.seed = seed
        self.groups = help_groups(data)

    def advice(self, facts: Mapping[str, Any], act: str, help_key: str) -> tuple[list[str], list[str]]:
        """The harm and safe lines of the help group that fit the act and objects, each list in
        seeded order with the lines made for this act first."""
        group = self.groups[facts["sub_category"], help_key]
        about = about_text(act, facts)
        key = (self.seed, facts["sample_id"])

        def fitting(lines: tuple[Advice, ...], name: str) -> list[str]:
            chosen = [line for line in lines if line.fit(about)]
            return [line.text for line in sorted(ranked(chosen, lambda a: a.text, *key, name),
                                                 key=lambda a: not a.fits)]

        return fitting(group.harm, "harm"), fitting(group.safe, "safe")

    def act_and_help(self, facts: Mapping[str, Any]) -> tuple[str, str]:
        """The act the question asks for, with the objects, and its help group."""
        draft = self.writer.find(facts, facts.get("harmful", ""))
        if draft is not None and draft.template.sub_category == facts["sub_category"]:
            return draft.act(*named_fillers(self.writer.book, facts)), draft.template.help
        section = self.parts["sub_categories"][facts["sub_category"]]
        objects = [definite(facts[f"object{slot}"]) for slot in range(1, slot_count(facts) + 1)]
        act = section["fallback_act"].format(a=objects[0], b=join_words(objects[1:]))
        return act, section["fallback_help"]

    def names(self, facts: Mapping[str, Any], act: str) -> dict[str, str]:
        """What the sentences are filled from: {A} {a} ... per object (with "a" / "the"),
        {objects} all of them, {shown} each with its image (more than two), and {act}."""
        count = slot_count(facts)
        names = {"act": second_person(act)}  # the user's request, reported by the assistant
        for slot, letter in zip(range(1, count + 1), "abcd", strict=False):
            names[letter.upper()] = indefinite(facts[f"object{slot}"])
            names[letter] = definite(facts[f"object{slot}"])
            names[f"{letter.upper()}_be"] = be(facts[f"object{slot}"])
        names["objects"] = join_words([names[letter] for letter in "abcd"[:count]])
        names["shown"] = join_words([f"{names[letter.upper()]} in {ordinal_image(slot)}"
                                     for slot, letter in enumerate("abcd"[:count], start=1)])
        return names

    def sentences(self, name: str, facts: Mapping[str, Any]) -> list[str]:
        """A sentence list of labels.yaml; ``<name>_many`` for samples of more than two images."""
        return list(self.parts[name if slot_count(facts) == 2 else f"{name}_many"])

    def answer(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The ``label`` answer: sentences picked by seed and sample, lengthened with more help up
        to ``min_words`` and shortened by the image note past ``max_words``."""
        key = (self.seed, facts["sample_id"])
        section = self.parts["sub_categories"][facts["sub_category"]]
        act, help_key = self.act_and_help(facts)
        harms, safe = self.advice(facts, act, help_key)
        names = self.names(facts, act)
        harmful = self.judge.images_harmful(facts)
        if any(harmful):
            shown = [names[letter] for letter, flag in zip("abcd", harmful, strict=False) if flag]
            names["H"] = join_words(shown)
            names["verb"] = "are" if len(shown) > 1 else be(shown[0])
            note = pick(self.sentences("hazard", facts), *key, "note")
        else:
            note = pick(self.sentences("ordinary", facts), *key, "note")
        sentences = [pick(self.sentences("perception", facts), *key, "perception"), note,
                     pick(self.sentences("act", facts), *key, "act"), harms[0], *safe[:2],
                     pick(section["close"], *key, "close")]
        text = self._join(sentences, names)
        extra = safe[2:]
        while word_count(text) < int(facts.get("min_words", 0)) and extra:
            sentences.insert(-1, extra.pop(0))
            text = self._join(sentences, names)
        if word_count(text) > int(facts.get("max_words", 10_000)):
            sentences.remove(note)
            text = self._join(sentences, names)
        return {"answer": text}

    def dream(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """``labels.style: dream``: a risk statement per image the judges found harmful, one for
        the request's words when they still state the harm, one for the combination; then the
        same answer as the MIS style."""
        lines = self.parts["dream"]
        act, _ = self.act_and_help(facts)
        names = {**self.names(facts, act), "sub": facts["sub_category"].casefold()}
        count = slot_count(facts)
        sources = [f"image{slot}" for slot in range(1, count + 1)
                   if facts.get(f"image{slot}_harmful")]
        if self.judge.unsafe(facts["question"]):
            sources.append("text")
        sources.append("combination")
        line_of = {source: lines[source] for source in sources}
        if count > 2:
            line_of["combination"] = lines["combination_many"]
        risks = [{"content": capitalize(line_of[source].format(**names)), "source": source,
                  "category": facts["sub_category"]} for source in sources]
        return {"risks": risks, **self.answer(facts)}

    @staticmethod
    def _join(sentences: list[str], names: Mapping[str, str]) -> str:
        return tidy(" ".join(capitalize(sentence.format(**names)) for sentence in sentences))
