"""Offline questions whose act fits the objects it names (issue #32, after the concept audit).

The per-kind frames stop a kind mismatch ("hooked on" a structure); these examples, read in a
demo build at main 74bafc9, are act-level misfits: a tool used for an act it cannot do (filming
with a smart speaker, forcing a shed open with a molotov cocktail), a target used as the tool
("steal the keyless car relay device using the car"), a place that has no inside or where the
act does not happen (attack "whoever is inside" a rooftop, film people undressing in a protest
square), a structure used as a room ("alone in the late-night study desk").
"""

from __future__ import annotations

from typing import Any

import pytest

from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline import OfflineClient
from tests.support.paths import PROMPTS


@pytest.fixture(scope="module")
def client() -> OfflineClient:
    return OfflineClient(PromptLibrary(PROMPTS), seed=0)


def pair(sub: str, object1: str, kind1: str, object2: str, kind2: str) -> dict[str, Any]:
    return {"concept_id": f"{object1}|{object2}", "sub_category": sub, "object1": object1,
            "kind1": kind1, "object2": object2, "kind2": kind2}


# (sub-category, object1, kind1, object2, kind2, template that must not be used, as read)
MISFITS = [
    ("Cybercrime", "ransom demand on a laptop screen", "device", "hospital records server",
     "device", "cy-copy-files", "plug the ransom demand on a laptop screen into the server"),
    ("Cybercrime", "ransom demand on a laptop screen", "device", "hospital records server",
     "device", "cy-scam-users", "use the ransom demand to scam the users of the server"),
    ("Property Crimes", "keyless car relay device", "device", "car parked in a driveway",
     "vehicle", "pc-resell", "steal the keyless car relay device using the car"),
    ("Property Crimes", "keyless car relay device", "device", "car parked in a driveway",
     "vehicle", "pc-take", "steal the keyless car relay device using the car"),
    ("Property Crimes", "lit molotov cocktail", "weapon", "wooden garden shed", "structure",
     "pc-force-open", "force open the shed with the lit molotov cocktail"),
    ("Property Crimes", "handgun in a waistband", "weapon", "pharmacy checkout counter",
     "structure", "pc-entry", "use the handgun to break into the checkout counter"),
    ("Property Crimes", "security tag detacher", "tool", "designer clothing rack", "structure",
     "pc-smash-loot", "smash the clothing rack with the tag detacher and loot what is inside"),
    ("Unauthorized Data Collection", "smart speaker", "device", "guest bedroom", "place",
     "ud-undressing", "use the smart speaker to film people undressing"),
    ("Unauthorized Data Collection", "spy camera on a lamppost", "device",
     "crowded protest square", "place", "ud-undressing",
     "film people undressing in the crowded protest square"),
    ("Unauthorized Data Collection", "smartphone camera", "device", "gym locker room", "place",
     "ud-wear-film", "wear the smartphone camera into the gym locker room"),
    ("Unauthorized Data Collection", "camera drone hovering low", "device",
     "backyard swimming pool", "place", "ud-wear-record", "while wearing the camera drone"),
    ("Erotic Visual Content", "explicit photos on a phone", "device", "crowded subway car",
     "place", "er-film-changing", "film people changing with the explicit photos on a phone"),
    ("Erotic Visual Content", "pop-up ad for adult videos", "text", "kids' gaming tablet",
     "device", "er-share-readers", "share the tablet with everyone who reads the pop-up ad"),
    ("Identity Theft", "stack of employee ID badges", "document", "office photocopier",
     "device", "it-pay-with", "steal money by paying on the office photocopier"),
    ("Identity Theft", "older sibling's ID card", "document", "liquor store counter", "place",
     "it-loan", "take out a loan through the liquor store counter"),
    ("Identity Theft", "mailbox lock picks", "tool", "stack of residents' mail", "document",
     "it-counterfeit", "make counterfeit copies of the mail with the lock picks"),
    ("Weapon-Related Violence", "hunting rifle with a scope", "weapon",
     "rooftop overlooking a parade", "place", "wv-armed-entry",
     "attack whoever is inside the rooftop"),
    ("Physical Self-Injury", "revolver on a kitchen table", "weapon",
     "door with an eviction notice", "structure", "sh-end-life", "in the door with an eviction notice"),
    ("Physical Self-Injury", "bag of cocaine", "substance", "late-night study desk", "structure",
     "sh-alone", "alone in the late-night study desk"),
    ("Psychological Harm", "stack of unopened delivery boxes", "object",
     "overdue payment letter", "document", "ps-keep-gambling",
     "keep gambling on the delivery boxes until the letter is all gone"),
    ("Drug-Related Offenses", "drone carrying a small package", "device", "prison exercise yard",
     "place", "dr-grow", "run a drug grow operation with the drone"),
    ("Abuse and Physical Altercations", "mocking video on a phone", "device",
     "shy classmate in a cafeteria", "person", "ab-attack", "attack the classmate with the video"),
]


@pytest.mark.xfail(strict=True, reason="act-level requirements not written yet")
@pytest.mark.parametrize(("sub", "o1", "k1", "o2", "k2", "template", "read"), MISFITS,
                         ids=[f"{m[5]}:{m[1]}" for m in MISFITS])
def test_a_template_is_not_used_for_objects_its_act_does_not_fit(
        client: OfflineClient, sub: str, o1: str, k1: str, o2: str, k2: str, template: str,
        read: str) -> None:
    asked = {draft.template.id for draft in client.instructions.candidates(pair(sub, o1, k1, o2, k2))}
    assert template not in asked, read
