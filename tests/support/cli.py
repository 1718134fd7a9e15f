"""Run ``mis-data`` in-process and write small build configs with absolute paths into the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from mis_data.cli import app
from tests.support.paths import CONFIGS, PROMPTS


def write_config(folder: Path, **overrides: Any) -> Path:
    """A build config with absolute paths into the repo; ``overrides`` replace top-level keys."""
    config: dict[str, Any] = {
        "name": "test",
        "seed": 0,
        "backend": "offline",
        "taxonomy": str(CONFIGS / "taxonomy.yaml"),
        "prompts_dir": str(PROMPTS),
        "concepts": {"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                     "max_per_sub_category": 2},
        "instructions": {"giveaway_phrases": str(CONFIGS / "giveaway_phrases.yaml")},
        "images": {"source": "typography", "typography_size": 128},
        "exports": ["mis", "internvl"],
    }
    config.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_cli(*args: str) -> Any:
    """Invoke ``mis-data`` in-process; returns the click Result (exit_code, output)."""
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)
