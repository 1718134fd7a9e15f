"""Every reference to the project's docs (``docs/recipe.md §1 step 2``) lands on a heading that
exists, so the code's pointers to the recipe, the formats and the eval protocol stay true."""

from __future__ import annotations

import re
import subprocess

from tests.support.paths import ROOT

REFERENCE = re.compile(r"docs/(\w+)\.md((?:,? ?§[\d.]+(?:-[\d.]+)?(?: step \d)?)+)")


def headings(doc: str) -> set[str]:
    """The section numbers of a doc: "§1", "§1 step 2", "§4.1" from its headings."""
    found = set()
    for line in (ROOT / "docs" / f"{doc}.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"#+ (§[\d.]+(?: step \d)?)", line)
        if match:
            found.add(match.group(1))
    return found


def references() -> list[tuple[str, str, str]]:
    """(file, doc, section) of every reference in the tracked files outside docs/."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if name.startswith("docs/") or path.suffix not in (".py", ".md", ".yaml", ".sh", ".toml"):
            continue
        text = " ".join(path.read_text(encoding="utf-8").split())  # references wrap lines
        for match in REFERENCE.finditer(text):
            for section in re.findall(r"§[\d.]+(?:-[\d.]+)?(?: step \d)?", match.group(2)):
                first = re.sub(r"-[\d.]+", "", section)
                found.append((name, match.group(1), "§" + first.lstrip("§")))
    return found


def test_every_reference_lands_on_a_heading() -> None:
    found = references()
    assert len(found) > 30  # the code points to the docs; an empty list means the regex broke
    missing = [f"{name}: docs/{doc}.md {section}" for name, doc, section in found
               if section not in headings(doc)]
    assert missing == []


# Prompt files are hashed into every run folder's identity and the card: a comment edited there
# would make every existing run refuse its own config, so their old pointers stay as they are.
HASHED = "mis_data/starter/prompts/"


def test_no_reference_to_notes_outside_the_repository() -> None:
    files = subprocess.run(["git", "grep", "-l", "-e", "MIS_NOTES", "-e", "FORMATS.md"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    assert [name for name in files if name != "tests/test_docs.py" and not name.startswith(HASHED)] == []
