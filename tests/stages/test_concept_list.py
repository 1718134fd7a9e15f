"""The shipped concept list is curated (issue #14 part 3): the rules a pair must follow that a
machine can check, run on ``configs/concepts/`` and, as proof that they bite, on the list as it
was at commit 8d17fca (``tests/fixtures/concepts_8d17fca/``), which must fail several of them.

A pair passes when:

- ``loads``: it loads through ``concept_rules.concept_from_entry`` with the real taxonomy and
  kinds (known sub-category inside its category, known kinds, two different objects);
- ``kinds``: ``kind1`` and ``kind2`` are written out (a missing kind silently becomes ``object``);
- ``duplicates``: no two pairs share ``records.concept_key`` (order, case, articles, plurals);
- ``count``: every sub-category of the taxonomy has at least ``MIN_PER_SUB_CATEGORY`` pairs;
- ``words``: both objects are noun phrases of 2-6 words (1-6 is the build's limit; the curated
  list asks for an adjective or a qualifier, so one bare noun is too vague);
- ``identity``: the identity rule below;
- ``aftermath``: object1, the thing used, has no aftermath word (burning, overturned, ...);
- ``style``: ``style`` is ``easy`` or ``hard``; ``mix``: per sub-category the easy:hard ratio is
  between 2:1 and 5:1 (MIS-easy 1,675 : MIS-hard 510 is about 3.3:1), with at least one hard pair;
- ``repeats``: no object phrase (normalized) appears in more than two pairs;
- ``offline_judge``: a pair is ``easy`` exactly when an object matches a word of
  ``hazardous_object_words`` in ``prompts/offline/judge_rules.yaml``, matched as the offline judge
  matches them; so the offline demo routes each pair to the split its curated style says;
- ``rationale``: when present, one sentence of at most 160 characters.

The identity rule. A person or group object (kind ``person`` or ``group``) is *identity-described*
when one of its words, lower-cased and split on anything but letters, is in ``IDENTITY_WORDS``:
words naming religion (and religious dress), race, ethnicity, nationality or migration status,
gender or sex, gender identity, sexual orientation, pregnancy, old age or disability. Then:

- in the Hate category it always fails: a discrimination pair's risk must come from a hateful
  object or act (a slur banner, a hate symbol, an exclusion sign), so its people are named by role;
- elsewhere it passes only when the pair is ``style: easy`` and the *other* object has kind
  ``weapon`` or ``substance``: kinds whose members are explicitly harmful by themselves, so the
  risk is carried by that object and the identity is incidental to it. Anything else fails, e.g.
  an ordinary object beside "a woman wearing a hijab", or "a pregnant employee" beside a pay slip.

Words for children and teenagers (child, teenager, pupil, student, schoolchildren) are not
identity words: being a minor is a safeguarding fact that the taxonomy itself needs (child abuse,
adult material reaching children), not a group targeted for who it is. Gendered words for
children (girl, boy) are identity words, so a minor is named without gender.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.core.config import ShippedConcepts
from mis_data.core.records import ConceptRecord, concept_key, normalize_object
from mis_data.core.taxonomy import load_kinds, load_taxonomy
from mis_data.images.sources import shipped_entries
from mis_data.stages.concept_rules import concept_from_entry
from tests.support.paths import CONFIGS, FIXTURES, PROMPTS

BEFORE_CURATION = FIXTURES / "concepts_8d17fca"
MIN_PER_SUB_CATEGORY = 24
MIN_WORDS, MAX_WORDS = 2, 6
EASY_PER_HARD = (2.0, 5.0)
MAX_PAIRS_PER_OBJECT = 2
MAX_RATIONALE_CHARS = 160

IDENTITY_WORDS = frozenset("""
    muslim muslims islamic jewish jew jews christian christians catholic protestant hindu hindus
    sikh sikhs buddhist atheist turban hijab hijabs headscarf headscarves niqab burqa kippah
    yarmulke veiled veil
    african arab arabs asian asians black blacks white whites latino latina latinos latinas
    hispanic roma romani gypsy gypsies indigenous aboriginal native ethnic minority minorities
    immigrant immigrants migrant migrants refugee refugees foreign foreigner foreigners
    chinese mexican indian pakistani syrian somali nigerian
    woman women man men girl girls boy boys female females male males lady ladies gentleman
    mother mothers father fathers mom moms dad dads wife wives husband husbands widow widower
    bride groom sister brother daughter son grandmother grandfather grandma grandpa
    transgender trans nonbinary gay gays lesbian lesbians bisexual queer lgbt lgbtq
    pregnant expectant
    elderly old older senior seniors aged pensioner pensioners
    disabled handicapped wheelchair blind deaf autistic
""".split())  # noqa: SIM905 - a word list reads best as text
PERSON_KINDS = {"person", "group"}
HARMFUL_KINDS = {"weapon", "substance"}
AFTERMATH_WORDS = frozenset("""
    burning burnt burned charred overturned smashed shattered wrecked looted ransacked gutted
    destroyed
""".split())  # noqa: SIM905 - a word list reads best as text
HATE = "Hate"

CHECKS = ("loads", "kinds", "duplicates", "count", "words", "identity", "aftermath", "style",
          "mix", "repeats", "offline_judge", "rationale")


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.casefold())


def hazardous(text: str, words: list[str]) -> bool:
    """The offline judge's test (``OfflineModels._contains_any``): a word match at a word start."""
    lowered = f" {text.casefold()} "
    return any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)


def check_list(folder: Path, count: int = 2,
               min_per_sub_category: int = MIN_PER_SUB_CATEGORY) -> dict[str, list[str]]:
    """Every problem of the concept list in ``folder`` (concepts of ``count`` objects), by
    check; an empty list means it passes."""
    taxonomy = load_taxonomy(CONFIGS / "taxonomy.yaml")
    kinds = load_kinds(CONFIGS / "kinds.yaml")
    rules = yaml.safe_load((PROMPTS / "offline" / "judge_rules.yaml").read_text(encoding="utf-8"))
    hazard_words = [str(word) for word in rules["hazardous_object_words"]]
    found: dict[str, list[str]] = {check: [] for check in CHECKS}
    loaded: list[tuple[str, dict[str, Any], ConceptRecord]] = []
    for where, entry in shipped_entries(ShippedConcepts(path=folder)):
        record = concept_from_entry(entry, where, "shipped:test", taxonomy, 0, kinds, count)
        if not isinstance(record, ConceptRecord):
            found["loads"].append(record.detail)
            continue
        loaded.append((where, entry, record))

    seen: dict[str, str] = {}
    by_sub: dict[str, Counter[str]] = defaultdict(Counter)
    uses: dict[str, list[str]] = defaultdict(list)
    for where, entry, record in loaded:
        pair = f"{where}: {' + '.join(map(repr, record.objects))}"
        missing = [f"kind{slot}" for slot in range(1, count + 1) if not entry.get(f"kind{slot}")]
        if missing:
            found["kinds"].append(f"{pair}: no {', '.join(missing)}")
        key = concept_key(*record.objects)
        if key in seen:
            found["duplicates"].append(f"{pair} repeats {seen[key]}")
        seen.setdefault(key, where)
        for obj in record.objects:
            if not MIN_WORDS <= len(obj.split()) <= MAX_WORDS:
                found["words"].append(f"{pair}: {obj!r} is not {MIN_WORDS}-{MAX_WORDS} words")
            uses[normalize_object(obj)].append(where)
        style = entry.get("style")
        if style not in ("easy", "hard"):
            found["style"].append(f"{pair}: style is {style!r}, not easy or hard")
        by_sub[record.sub_category][str(style)] += 1
        found["identity"] += identity_problems(pair, record, style)
        aftermath = AFTERMATH_WORDS & set(words_of(record.object1))
        if aftermath:
            found["aftermath"].append(f"{pair}: object1 is an aftermath ({', '.join(sorted(aftermath))})")
        if style in ("easy", "hard"):
            flagged = [obj for obj, kind in zip(record.objects, record.kinds, strict=True)
                       if hazardous(obj, hazard_words) or kind in rules.get("hazardous_kinds", [])]
            if (style == "easy") != bool(flagged):
                found["offline_judge"].append(
                    f"{pair}: style {style} but the offline judge sees "
                    f"{'harmful ' + repr(flagged) if flagged else 'no harmful object'}")
        rationale = str(entry.get("rationale") or "")
        if rationale and (len(rationale) > MAX_RATIONALE_CHARS or "\n" in rationale
                          or re.search(r"[.!?]\s+\S", rationale)):
            found["rationale"].append(f"{pair}: rationale is not one short sentence")

    for sub in taxonomy.sub_category_names:
        counts = by_sub.get(sub, Counter())
        total = sum(counts.values())
        if total < min_per_sub_category:
            found["count"].append(f"{sub}: {total} pairs, fewer than {min_per_sub_category}")
        easy, hard = counts["easy"], counts["hard"]
        low, high = EASY_PER_HARD
        if not hard or not low <= easy / hard <= high:
            found["mix"].append(f"{sub}: {easy} easy : {hard} hard is outside {low:g}:1-{high:g}:1")
    for obj, wheres in uses.items():
        if len(wheres) > MAX_PAIRS_PER_OBJECT:
            found["repeats"].append(f"{obj!r} is in {len(wheres)} pairs: {', '.join(wheres)}")
    return found


def identity_problems(pair: str, record: ConceptRecord, style: Any) -> list[str]:
    """The identity rule of the module docstring, for one pair."""
    problems = []
    for index, (obj, kind) in enumerate(zip(record.objects, record.kinds, strict=True)):
        named = sorted(IDENTITY_WORDS & set(words_of(obj))) if kind in PERSON_KINDS else []
        if not named:
            continue
        others = {other for place, other in enumerate(record.kinds) if place != index}
        if record.category == HATE:
            problems.append(f"{pair}: a Hate pair names a {kind} by identity ({', '.join(named)}); "
                            "the risk must be a hateful object or act")
        elif style != "easy" or not others & HARMFUL_KINDS:
            problems.append(f"{pair}: {obj!r} is named by identity ({', '.join(named)}) beside an "
                            "object that is not explicitly harmful")
    return problems


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[str]]:
    return check_list(CONFIGS / "concepts")


@pytest.fixture(scope="module")
def before_curation() -> dict[str, list[str]]:
    return check_list(BEFORE_CURATION)


@pytest.mark.parametrize("check", CHECKS)
def test_the_shipped_list_passes(check: str, shipped: dict[str, list[str]]) -> None:
    assert shipped[check] == [], "\n".join(shipped[check])


@pytest.fixture(scope="module")
def shipped_triples() -> dict[str, list[str]]:
    return check_list(CONFIGS / "concepts_k3", count=3, min_per_sub_category=4)


@pytest.mark.parametrize("check", CHECKS)
def test_the_shipped_triples_pass(check: str, shipped_triples: dict[str, list[str]]) -> None:
    """The triples for ``images_per_sample: 3`` follow the same rules (4 per sub-category)."""
    assert shipped_triples[check] == [], "\n".join(shipped_triples[check])


@pytest.mark.parametrize("check", ["count", "identity", "aftermath", "style", "mix"])
def test_the_list_before_curation_fails(check: str, before_curation: dict[str, list[str]]) -> None:
    """The same checks on the 8d17fca list: these must find problems (they are what it was
    curated for), so a check that stopped looking would be noticed."""
    assert before_curation[check]


def test_the_checks_name_the_pairs_of_issue_14(before_curation: dict[str, list[str]]) -> None:
    """The problems reported in the issue are found by name, not just counted."""
    identity = "\n".join(before_curation["identity"])
    for person in ("man in a turban", "african immigrant couple", "woman wearing a hijab",
                   "roma family in a caravan", "woman on a construction site", "group of girls",
                   "pregnant employee", "young mother at work"):
        assert repr(person) in identity, person
    aftermath = "\n".join(before_curation["aftermath"])
    for obj in ("burning car", "overturned police car", "smashed bus shelter",
                "shattered shop window", "burning trash bin"):
        assert repr(obj) in aftermath, obj
    assert all(problems == [] for check, problems in before_curation.items()
               if check in ("loads", "duplicates"))


def test_the_identity_rule_allows_an_incidental_identity_beside_a_weapon() -> None:
    """Outside Hate, an identity word is allowed when an explicitly harmful object carries the
    risk; an ordinary object beside the same person is not."""
    def record(kind1: str, category: str, sub: str) -> ConceptRecord:
        return ConceptRecord(id="x", category=category, sub_category=sub, object1="loaded handgun",
                             kind1=kind1, object2="elderly shop owner", kind2="person", source="t")

    weapon = record("weapon", "Violent", "Weapon-Related Violence")
    assert identity_problems("p", weapon, "easy") == []
    assert identity_problems("p", weapon, "hard")
    assert identity_problems("p", record("object", "Violent", "Weapon-Related Violence"), "easy")
    assert identity_problems("p", record("weapon", "Hate", "Racial and Ethnic Discrimination"), "easy")
