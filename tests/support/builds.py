"""Small finished offline runs for the split, export, validate and hub tests.

A real ``mis-data build`` of the shipped taxonomy, concepts and offline prompt files, capped at
a few concepts per sub-category.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from mis_data.cli import app
from tests.support.paths import CONFIGS, PROMPTS

# huggingface_hub and datasets read these once, at import: set them before any test imports them
# (tests/conftest.py sets them too, and its per-test monkeypatch comes too late for module-level
# constants).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

def shipped_project() -> dict[str, Any]:
    """The repository's own data, a few concepts per sub-category, one question per pair (the
    split and export tests reason about single samples; sibling grouping has its own tests)."""
    return {"taxonomy": str(CONFIGS / "taxonomy.yaml"), "prompts_dir": str(PROMPTS),
            "concepts": {"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                         "max_per_sub_category": 3},
            "instructions": {"per_pair": 1,
                             "giveaway_phrases": str(CONFIGS / "giveaway_phrases.yaml")}}


def write_config(folder: Path, **overrides: Any) -> Path:
    """A small offline build config with every export; ``overrides`` replace top-level keys."""
    folder.mkdir(parents=True, exist_ok=True)
    project = shipped_project()
    config: dict[str, Any] = {"name": "splitexport", "seed": 0, "backend": "offline", **project,
                              "images": {"source": "typography", "typography_size": 96},
                              "splits": {"val_size": 0.34},
                              "exports": ["mis", "internvl", "llamafactory", "hf"]}
    config.update(overrides)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def taxonomy_path(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text(encoding="utf-8"))["taxonomy"])


def run_cli(*args: object) -> Any:
    """``mis-data`` in-process; returns the click Result (exit_code, output, stderr)."""
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def build(config: Path, run_dir: Path, *extra: object) -> Path:
    result = run_cli("build", "--config", config, "--run-dir", run_dir, "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return run_dir


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def copy_run(run: Path, destination: Path) -> Path:
    """A private copy of a shared run (hard links would let a test damage the original)."""
    shutil.copytree(run, destination)
    return destination


_SHARED: dict[str, Path] = {}


def shared_run(factory: Any) -> Path:
    """One finished build (val_size 0.34, all four exports) per test session, for readers only.

    Cached here rather than in a fixture so every test module gets the same folder: a fixture
    imported into several modules would be built once per module.
    """
    if "run" not in _SHARED:
        root = factory.mktemp("shared")
        _SHARED["run"] = build(write_config(root), root / "run")
    return _SHARED["run"]


def ray_demo_config(folder: Path, workers: int = 2) -> Path:
    """The shipped demo config with ``executor: ray``, its paths made absolute."""
    data = yaml.safe_load((CONFIGS / "demo.yaml").read_text(encoding="utf-8"))
    data.update(taxonomy=str(CONFIGS / "taxonomy.yaml"), prompts_dir=str(PROMPTS),
                executor="ray", ray={"num_workers": workers})
    data["concepts"]["sources"][0]["path"] = str(CONFIGS / "concepts")
    data["instructions"]["giveaway_phrases"] = str(CONFIGS / "giveaway_phrases.yaml")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo_ray.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
