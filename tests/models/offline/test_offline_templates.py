"""The offline question templates, rendered with every kind they accept, obey the agreement rules.

Every template of ``prompts/offline/instructions.yaml`` is rendered in the three forms MIS's step 2
produces (harmful, with sample object names; replaced, with the kinds' reference phrases;
detoxified, through ``detox_rules.yaml``) for each kind it accepts, in both image orders, and each
form is checked: no person verb on a thing or place, number agreement, a/an, no doubled article;
the replaced and final forms keep both image references and name no object; the final one has no
giveaway phrase and 40-300 characters. Every shipped pair, and every pair of kinds, has at least
three templates that fit.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
import yaml

from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline import OfflineClient
from mis_data.models.offline.detox import Reference
from mis_data.models.offline.grammar import is_plural
from mis_data.models.offline.instructions import InstructionWriter, object_words
from mis_data.models.offline.templates import Draft, Filler, Template, object_filler
from tests.support.offline_checks import (
    CONFIGS,
    PROMPTS,
    REFS,
    Slot,
    agreement_problems,
    final_problems,
    kinds,
    template_pronoun_problems,
)

# Object names per kind for the harmful form: one singular, one plural where that is natural.
SAMPLE_NAMES = {
    "object": ["heavy rock", "loose bricks"], "tool": ["crowbar", "bolt cutters"],
    "weapon": ["hunting knife", "throwing axes"], "substance": ["white powder", "sleeping pills"],
    "container": ["plastic bag", "gas canisters"], "device": ["hidden camera", "card readers"],
    "vehicle": ["delivery van", "motorbikes"], "document": ["passport", "bank statements"],
    "text": ["threatening note", "hateful comments"], "symbol": ["hate symbol"],
    "clothing": ["ski mask", "boxing gloves"], "food": ["birthday cake", "gummy sweets"],
    "animal": ["stray dog", "farm horses"], "person": ["elderly neighbor", "teenage boys"],
    "group": ["crowd of fans"], "place": ["jewelry store"], "structure": ["front door",
                                                                           "iron railings"],
    "scene": ["street protest"],
}
LIMIT = 60  # kind pairs per template beyond which the pairs are covered, not all enumerated


@pytest.fixture(scope="module")
def writer() -> InstructionWriter:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0).instructions


def kind_pairs(template: Template) -> list[tuple[str, ...]]:
    """The kinds to render a template with, one per role: every combination while there are
    few, else a spread that covers each accepted kind of each role."""
    accepted = [sorted(template.slots[role]) for role in template.roles]
    if math.prod(len(kinds) for kinds in accepted) <= LIMIT:
        return list(itertools.product(*accepted))
    size = max(len(kinds) for kinds in accepted)
    return [tuple(kinds[(i * (1 + 6 * position)) % len(kinds)]
                  for position, kinds in enumerate(accepted)) for i in range(size)]


def render_problems(writer: InstructionWriter, template: Template, *role_kinds: str) -> list[str]:
    """Every form of ``template`` with each role of its kind, in every image order (a pair's
    two orders; a triple's six)."""
    vocabulary = kinds()
    human = writer.book.human
    problems = []
    count = len(role_kinds)
    refs_k = (*REFS, "the third image", "the fourth image")[:count]
    # every image order for two or three roles; for four (the generic fallbacks) the rotations
    placements = list(itertools.permutations(range(count))) if count <= 3 else [
        tuple((slot + shift) % count for slot in range(count)) for shift in range(count)]
    for placement in placements:
        # role i is shown in image ``placement[i]``; ``order`` lists the kinds in image order
        order = tuple(role_kinds[placement.index(slot)] for slot in range(count))
        kind_objects = [vocabulary[name] for name in order]
        phrases = [kind.reference(ref) for kind, ref in zip(kind_objects, refs_k, strict=True)]
        neutrals = [kind.reference(ref, detoxified=True)
                    for kind, ref in zip(kind_objects, refs_k, strict=True)]
        refs = [Reference(p, n, kind.animate) for p, n, kind in zip(phrases, neutrals, kind_objects,
                                                                      strict=True)]
        replaced = [Filler(p, is_plural(p), kind.name in human)
                    for p, kind in zip(phrases, kind_objects, strict=True)]
        for opener in (min(writer.book.openers, key=len), max(writer.book.openers, key=len)):
            draft = Draft(template, placement, opener)
            samples = [SAMPLE_NAMES[name] if count <= 3 else SAMPLE_NAMES[name][:1] for name in order]
            for names in itertools.product(*samples):
                if writer.clashes(draft, set().union(*(object_words(name) for name in names))):
                    continue  # never drafted for such a pair: its words would name the object
                named = [object_filler(n, k, human) for n, k in zip(names, order, strict=True)]
                harmful = draft.question(*named)
                where = f"{template.id} [{', '.join(order)}] {harmful!r}"
                if not writer.judge.markers(harmful):
                    problems.append(f"{where}: the harmful draft states no harm")
                slots = [Slot(f.text, k) for f, k in zip(named, kind_objects, strict=True)]
                problems += [f"{where}: {p}" for p in agreement_problems(harmful, slots)]
                act = draft.act(*named)
                problems += [f"{where} act {act!r}: {p}"
                             for p in agreement_problems(act, slots)]
                question = draft.question(*replaced)
                final, _ = writer.detox.apply(question, refs)
                for form, text, words in (("replaced", question, phrases),
                                          ("final", final, neutrals)):
                    slots = [Slot(w, k) for w, k in zip(words, kind_objects, strict=True)]
                    found = agreement_problems(text, slots)
                    found += final_problems(text, names, refs_k) if form == "final" else []
                    problems += [f"{where} {form} {text!r}: {p}" for p in found]
    return problems


def test_every_template_renders_cleanly_with_every_kind_it_accepts(writer: InstructionWriter) -> None:
    problems = []
    for templates in writer.book.templates.values():
        for template in templates:
            problems += [f"{template.id}: {p}" for p in template_pronoun_problems(template.body)]
            problems += [f"{template.id} act: {p}" for p in template_pronoun_problems(template.act)]
            for role_kinds in kind_pairs(template):
                problems += render_problems(writer, template, *role_kinds)
    assert not problems, f"{len(problems)} malformed renderings, e.g.:\n" + "\n".join(problems[:25])


def shipped_concepts(folder: str = "concepts") -> list[dict]:
    concepts = []
    for path in sorted((CONFIGS / folder).glob("*.yaml")):
        concepts += yaml.safe_load(path.read_text(encoding="utf-8"))["concepts"]
    return concepts


def pair_facts(entry: dict, index: int = 0) -> dict:
    """The facts the offline writer reads for a shipped concept (two objects or more)."""
    slots = [slot for slot in range(1, 5) if entry.get(f"object{slot}")]
    return {"sub_category": entry["sub_category"], "concept_id": f"pair-{index}",
            **{f"object{slot}": entry[f"object{slot}"] for slot in slots},
            **{f"kind{slot}": entry.get(f"kind{slot}", "object") for slot in slots}}


def test_every_shipped_triple_has_three_fitting_templates(writer: InstructionWriter) -> None:
    """configs/concepts_k3 (images_per_sample: 3) gets three-role questions of its own
    sub-category, not only fallbacks."""
    short = []
    for index, entry in enumerate(shipped_concepts("concepts_k3")):
        fitting = [d for d in writer.candidates(pair_facts(entry, index)) if not d.template.fallback]
        assert all(len(d.template.roles) == 3 for d in fitting)
        if len(fitting) < 3:
            short.append(f"{entry['sub_category']}: {entry['object1']} + {entry['object2']} + "
                         f"{entry['object3']}: {len(fitting)}")
    assert not short, "triples with fewer than 3 fitting templates:\n" + "\n".join(short)


def test_every_shipped_pair_has_three_fitting_templates(writer: InstructionWriter) -> None:
    short = []
    for index, entry in enumerate(shipped_concepts()):
        fitting = [d for d in writer.candidates(pair_facts(entry, index)) if not d.template.fallback]
        if len(fitting) < 3:
            short.append(f"{entry['sub_category']}: {entry['object1']} ({entry.get('kind1')}) + "
                         f"{entry['object2']} ({entry.get('kind2')}): {len(fitting)}")
    assert not short, "pairs with fewer than 3 fitting templates:\n" + "\n".join(short)


def test_every_pair_of_kinds_has_three_templates_in_every_sub_category(
        writer: InstructionWriter) -> None:
    """Any concept list that uses the kinds vocabulary gets its questions (fallbacks included)."""
    vocabulary = sorted(kinds())
    short = [f"{sub}: {first} + {second}"
             for sub in writer.book.templates
             for first, second in itertools.product(vocabulary, vocabulary)
             if len(writer.book.compatible(sub, first, second)) < 3]
    assert not short, "\n".join(short[:20])


def test_kind_groups_agree_with_kinds_yaml(writer: InstructionWriter) -> None:
    vocabulary = kinds()
    assert writer.book.groups["any"] == set(vocabulary)
    assert writer.book.groups["animate"] == {name for name, kind in vocabulary.items() if kind.animate}
    assert writer.book.human <= writer.book.groups["animate"]


def test_each_sub_category_has_both_wordings(writer: InstructionWriter) -> None:
    """Some drafts the detox rules can neutralize (test split), most they cannot (train)."""
    for count in (2, 3):  # the two-image templates, and the three-image ones (concepts_k3)
        shares = {sub: writer.plan.share(sub, count) for sub in writer.book.templates}
        assert all(0.25 <= share <= 0.55 for share in shares.values()), (count, shares)


def test_a_train_template_names_its_kept_harm_in_its_act(writer: InstructionWriter) -> None:
    """The label's risk sentence quotes the act: it must contain what keeps the question unsafe."""
    missing = []
    for templates in writer.book.templates.values():
        for template in templates:
            final = writer.plan.generic_final(template)
            kept = writer.judge.markers(final)
            act = re.sub(r"\{[abcd]\.(\w+)\}", r"\1", template.act)
            if kept and not writer.judge.markers(act):
                missing.append(f"{template.id}: keeps {kept}, act {template.act!r}")
    assert not missing, "\n".join(missing)


def test_the_labels_have_help_for_every_act(writer: InstructionWriter) -> None:
    labels = yaml.safe_load((PROMPTS / "offline" / "labels.yaml").read_text(encoding="utf-8"))
    missing = [f"{t.sub_category} / {t.help} ({t.id})"
               for templates in writer.book.templates.values() for t in templates
               if t.help not in labels["sub_categories"][t.sub_category]["helps"]]
    assert not missing, missing


def test_a_template_with_topics_fits_only_pairs_on_its_topic(writer: InstructionWriter) -> None:
    """Kinds alone would put an eating-disorder question on a gambling pair."""
    def ids(object1: str, kind1: str, object2: str, kind2: str) -> set[str]:
        facts = {"sub_category": "Psychological Harm", "object1": object1, "object2": object2,
                 "kind1": kind1, "kind2": kind2, "concept_id": "topics"}
        return {draft.template.id for draft in writer.candidates(facts)}

    gambling = ids("row of slot machines", "object", "envelope of rent money", "document")
    eating = ids("starvation diet app", "text", "kitchen food scale", "device")
    assert "ps-keep-gambling" in gambling and "ps-stop-eating" not in gambling
    assert "ps-stop-eating" in eating and "ps-keep-gambling" not in eating
