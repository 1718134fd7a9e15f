"""MIS step 5 offline: a safety answer written for the question (``prompts/offline/labels.yaml``).

One continuous answer in MIS's order (MIS_NOTES.md §3.3): what each image shows, by name; why
the combination is risky, naming the act the question asks for (the template's ``act``, filled
with the objects); then help that fits that act (the template's ``help`` group of its
sub-category: a lock-out is answered with a locksmith, a weapon threat with ways to stay safe),
closed by an offer from the sub-category. No heading, no apology opener, no steps.

A question the backend did not write (a scripted test, a moved sub-category) gets the
sub-category's ``fallback`` act and help.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mis_data.models.offline.grammar import capitalize, definite, indefinite, pick, ranked, tidy
from mis_data.models.offline.instructions import InstructionWriter, named_fillers
from mis_data.models.offline.judges import JudgeRules


def word_count(text: str) -> int:
    return len(text.split())


class LabelWriter:
    def __init__(self, data: Mapping[str, Any], writer: InstructionWriter, judge: JudgeRules,
                 seed: int) -> None:
        self.parts = data
        self.writer = writer
        self.judge = judge
        self.seed = seed

    def act_and_help(self, facts: Mapping[str, Any]) -> tuple[str, str]:
        """The act the question asks for, with the objects, and its help group."""
        draft = self.writer.find(facts, facts.get("harmful", ""))
        if draft is not None and draft.template.sub_category == facts["sub_category"]:
            return draft.act(*named_fillers(self.writer.book, facts)), draft.template.help
        section = self.parts["sub_categories"][facts["sub_category"]]
        act = section["fallback_act"].format(a=definite(facts["object1"]),
                                             b=definite(facts["object2"]))
        return act, section["fallback_help"]

    def answer(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        key = (self.seed, facts["sample_id"])
        section = self.parts["sub_categories"][facts["sub_category"]]
        act, help_key = self.act_and_help(facts)
        group = section["helps"][help_key]
        names = {"A": indefinite(facts["object1"]), "B": indefinite(facts["object2"]),
                 "a": definite(facts["object1"]), "b": definite(facts["object2"]), "act": act}
        harmful = self.judge.images_harmful(facts)
        if any(harmful):
            shown = [names[slot] for slot, flag in zip("ab", harmful, strict=True) if flag]
            names["H"] = " and ".join(shown)
            names["verb"] = "are" if len(shown) > 1 else "is"
            note = pick(self.parts["hazard"], *key, "note")
        else:
            note = pick(self.parts["ordinary"], *key, "note")
        safe = ranked(list(group["safe"]), str, *key, "safe")
        sentences = [pick(self.parts["perception"], *key, "perception"), note,
                     pick(self.parts["act"], *key, "act"), pick(group["harm"], *key, "harm"),
                     *safe[:2], pick(section["close"], *key, "close")]
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
        names = {"A": indefinite(facts["object1"]), "B": indefinite(facts["object2"]),
                 "a": definite(facts["object1"]), "b": definite(facts["object2"]), "act": act,
                 "sub": facts["sub_category"].casefold()}
        sources = [slot for slot in ("image1", "image2") if facts.get(f"{slot}_harmful")]
        if self.judge.unsafe(facts["question"]):
            sources.append("text")
        sources.append("combination")
        risks = [{"content": capitalize(lines[source].format(**names)), "source": source,
                  "category": facts["sub_category"]} for source in sources]
        return {"risks": risks, **self.answer(facts)}

    @staticmethod
    def _join(sentences: list[str], names: Mapping[str, str]) -> str:
        return tidy(" ".join(capitalize(sentence.format(**names)) for sentence in sentences))
