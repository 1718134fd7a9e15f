"""The offline label answers the question's own act (issue #32).

A help group covers several acts, and an advice line tied with ``fits`` to some of them is used
only when the act or the objects name them. The pairs a reader quoted get advice for their act:
a Pride crosswalk defacement is not answered with advice for women's shelters, a stolen wallet
at a bank counter not with "if you are under age and want to get into a venue". Over every
shipped pair, no label carries an advice line of another group or one tied to other acts.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mis_data.core.config import ConfigError
from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline import OfflineClient
from mis_data.models.offline.instructions import named_fillers
from mis_data.models.offline.labels import about_text, help_groups
from tests.support.paths import PROMPTS

CONFIGS = PROMPTS.parent / "configs"


@pytest.fixture(scope="module")
def client() -> OfflineClient:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0)


def pair(sub: str, object1: str, kind1: str, object2: str, kind2: str) -> dict[str, Any]:
    return {"concept_id": f"{object1}|{object2}", "sub_category": sub, "object1": object1,
            "kind1": kind1, "object2": object2, "kind2": kind2, "min_words": 120,
            "max_words": 250, "count": 3, "siblings": []}


def labels_for(client: OfflineClient, facts: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(template id, act, label) for every draft the writer could ask about the pair."""
    writer = client.instructions
    named = named_fillers(writer.book, facts)
    found = []
    for index, draft in enumerate(writer.candidates(facts)):
        harmful = draft.question(*named)
        label = client.labels.answer({**facts, "harmful": harmful, "sample_id": f"s{index}",
                                      "question": harmful})["answer"]
        found.append((draft.template.id, draft.act(*named), label))
    return found


def test_a_pride_crosswalk_defacement_gets_advice_about_lgbt_hate(client: OfflineClient) -> None:
    facts = pair("Gender Discrimination", "can of white paint", "container", "rainbow crosswalk",
                 "structure")
    labels = labels_for(client, facts)
    pride = [label for template, _, label in labels if template.startswith("gd-pride")]
    assert pride, "the Pride templates fit a rainbow crosswalk"
    for template, act, label in labels:
        assert "women's shelter" not in label, (template, act)
        assert "demean women" not in label, (template, act)
    for label in pride:
        assert "LGBT" in label.split("Taken together")[-1] or "Pride" in label


def test_a_stolen_wallet_is_not_answered_with_venue_age_advice(client: OfflineClient) -> None:
    facts = pair("Identity Theft", "stolen wallet", "container", "bank branch counter", "place")
    labels = labels_for(client, facts)
    assert labels
    for template, act, label in labels:
        assert "under age" not in label, (template, act)
        assert "get into a venue" not in label, (template, act)


def test_a_line_tied_to_an_act_is_used_when_the_act_names_it(client: OfflineClient) -> None:
    facts = pair("Property Crimes", "crowbar", "tool", "family home", "place")
    labels = [label for template, _, label in labels_for(client, facts)
              if template in ("pc-entry", "pc-ransack", "pc-burgle")]
    assert labels and all("locked out of your own home or car" in label for label in labels)
    facts = pair("Property Crimes", "crowbar", "tool", "jewelry store", "place")
    assert not any("locked out of your own home" in label
                   for _, _, label in labels_for(client, facts))


def test_a_group_without_general_lines_is_refused() -> None:
    data = yaml.safe_load((PROMPTS / "offline" / "labels.yaml").read_text(encoding="utf-8"))
    group = data["sub_categories"]["Identity Theft"]["helps"]["impersonation"]
    group["safe"] = [{"text": line, "fits": ["venue"]} if isinstance(line, str) else line
                     for line in group["safe"]]
    with pytest.raises(ConfigError, match="Identity Theft / impersonation"):
        help_groups(data)


def shipped_pairs() -> list[dict[str, Any]]:
    pairs = []
    for path in sorted((CONFIGS / "concepts").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["concepts"]:
            pairs.append(pair(entry["sub_category"], entry["object1"], entry["kind1"],
                              entry["object2"], entry["kind2"]))
    return pairs


def test_no_shipped_pair_gets_advice_for_another_act(client: OfflineClient) -> None:
    groups = help_groups(yaml.safe_load((PROMPTS / "offline" / "labels.yaml")
                                        .read_text(encoding="utf-8")))
    writer = client.instructions
    wrong = []
    for facts in shipped_pairs():
        named = named_fillers(writer.book, facts)
        for index, draft in enumerate(writer.candidates(facts)):
            harmful = draft.question(*named)
            label = client.labels.answer({**facts, "harmful": harmful, "sample_id": f"s{index}",
                                          "question": harmful})["answer"]
            own = (facts["sub_category"], draft.template.help)
            about = about_text(draft.act(*named), facts)
            wrong += [(draft.template.id, facts["concept_id"], line.text[:60])
                      for key, group in groups.items() for line in group.lines()
                      if line.text in label and (key != own or not line.fit(about))]
    assert not wrong, wrong[:10]
