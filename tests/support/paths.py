"""Where things are in the repository, for every test whatever folder it sits in."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CONFIGS = ROOT / "configs"
PROMPTS = ROOT / "prompts"
PACKAGE = ROOT / "mis_data"
FIXTURES = TESTS / "fixtures"
