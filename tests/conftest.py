"""Shared fixtures: paths into the repo, small config factories and one finished demo build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mis_data.cli import app

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
PROMPTS = REPO / "prompts"


@pytest.fixture(autouse=True)
def _no_hub_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the Hugging Face Hub; an accidental call fails fast instead."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped offline demo, built once for every test that only reads it."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    result = run_cli("build", "--config", CONFIGS / "demo.yaml", "--run-dir", run_dir,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    return run_dir
