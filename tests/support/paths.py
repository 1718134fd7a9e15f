"""Where things are in the repository, for every test whatever folder it sits in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CONFIGS = ROOT / "configs"
PROMPTS = ROOT / "prompts"
PACKAGE = ROOT / "mis_data"
FIXTURES = TESTS / "fixtures"


def shipped_concepts() -> list[dict[str, Any]]:
    """Every entry of the shipped concept lists, pairs (``concepts/``) then triples
    (``concepts_k3/``), as the files write them."""
    entries: list[dict[str, Any]] = []
    for folder in ("concepts", "concepts_k3"):
        for path in sorted((CONFIGS / folder).glob("*.yaml")):
            entries += yaml.safe_load(path.read_text(encoding="utf-8"))["concepts"]
    return entries
