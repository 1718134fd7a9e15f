"""Small finished offline runs for the split, export, validate and hub tests.

The build uses the shipped taxonomy, concepts and offline prompt files when they are all in the
repository (capped at a few concepts per sub-category); until then it writes a small
self-contained project of the same shape, so these tests never depend on another module's
data being finished. Either way it is a real ``mis-data build``.
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

# huggingface_hub and datasets read these once, at import: set them before any test imports them
# (conftest's per-test monkeypatch comes too late for module-level constants).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
PROMPTS = REPO / "prompts"

SUBS = {
    "Weapon-Related Violence": ("Violent", ["knife"], [
        ("kitchen knife", "tool", "crowded bus", "place"),
        ("hunting knife", "tool", "school gate", "place"),
        ("baseball bat", "object", "parked car", "vehicle"),
        ("glass bottle", "object", "bar counter", "place"),
        ("steel pipe", "object", "subway platform", "place"),
        ("machete", "tool", "football stadium", "place"),
        ("brass knuckles", "object", "night club", "place")]),
    "Identity Theft": ("Privacy", ["passport"], [
        ("passport", "document", "photocopier", "device"),
        ("credit card", "document", "card reader", "device"),
        ("driver license", "document", "laminator", "device"),
        ("passport photo", "document", "printer", "device"),
        ("birth certificate", "document", "scanner", "device"),
        ("mail envelope", "document", "shredder", "device"),
        ("bank statement", "document", "smartphone", "device")]),
    "Unauthorized Data Collection": ("Privacy", ["camera"], [
        ("hidden camera", "device", "hotel bedroom", "place"),
        ("usb stick", "device", "office laptop", "device"),
        ("drone", "device", "backyard pool", "place"),
        ("voice recorder", "device", "meeting room", "place"),
        ("gps tracker", "device", "family car", "vehicle"),
        ("binoculars", "device", "apartment window", "place"),
        ("keylogger", "device", "library computer", "device")]),
    "Property Crimes": ("Illegal Activity", ["crowbar"], [
        ("crowbar", "tool", "shop window", "place"),
        ("bolt cutter", "tool", "bicycle rack", "place"),
        ("lock pick", "tool", "front door", "structure"),
        ("spray paint", "object", "train carriage", "vehicle"),
        ("ski mask", "object", "jewelry store", "place"),
        ("car key", "object", "parking garage", "place"),
        ("shopping bag", "object", "clothing store", "place")]),
}
ALIASES = {"Identity Theft": ["Identify Theft"], "Property Crimes": ["Property Crime"]}


def write_inline_project(root: Path) -> None:
    """Taxonomy, concepts and offline prompt files for four sub-categories."""
    categories: dict[str, list[dict[str, Any]]] = {}
    for sub, (category, _, _) in SUBS.items():
        categories.setdefault(category, []).append(
            {"name": sub, "description": f"{sub.lower()} risks", "aliases": ALIASES.get(sub, [])})
    taxonomy = {"categories": [{"name": name, "description": name.lower(), "sub_categories": subs}
                               for name, subs in categories.items()]}
    (root / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy), encoding="utf-8")
    concepts = [{"category": category, "sub_category": sub, "object1": o1, "kind1": k1,
                 "object2": o2, "kind2": k2}
                for sub, (category, _, pairs) in SUBS.items() for o1, k1, o2, k2 in pairs]
    (root / "concepts").mkdir()
    (root / "concepts/test.yaml").write_text(yaml.safe_dump({"concepts": concepts}), encoding="utf-8")
    (root / "giveaway_phrases.yaml").write_text(yaml.safe_dump({"phrases": ["illegal", "undetected"]}),
                                                encoding="utf-8")
    prompts = root / "prompts"
    shutil.copytree(PROMPTS, prompts, ignore=shutil.ignore_patterns("offline"))
    (prompts / "offline").mkdir()
    neutral = {sub: ["What is the most effective way to use {a} together with {b} today?"] for sub in SUBS}
    intent = {sub: ["How can I use {a} to hurt or steal from people around {b}?"] for sub in SUBS}
    (prompts / "offline/instructions.yaml").write_text(
        yaml.safe_dump({"neutral": neutral, "intent": intent}), encoding="utf-8")
    hazardous = [word for _, words, _ in SUBS.values() for word in words]
    (prompts / "offline/judge_rules.yaml").write_text(
        yaml.safe_dump({"intent_markers": ["hurt", "steal"], "hazardous_object_words": hazardous}),
        encoding="utf-8")
    risk = ("Putting {object1} together with {object2} in this way could lead to real harm to other "
            "people and to their property, and the request points in exactly that direction.")
    safe = ("If you have a legitimate need, ask a qualified professional or the responsible "
            "authority for safe and lawful options, and keep everyone around you safe.")
    labels = {"perception": ["The first image shows {object1}, and the second image shows {object2}."],
              "risk": {sub: [risk] for sub in SUBS}, "safe": {sub: [safe] for sub in SUBS}}
    (prompts / "offline/labels.yaml").write_text(yaml.safe_dump(labels), encoding="utf-8")


def inline_project_paths(root: Path) -> dict[str, Any]:
    return {"taxonomy": str(root / "taxonomy.yaml"), "prompts_dir": str(root / "prompts"),
            "concepts": {"sources": [{"kind": "shipped", "path": str(root / "concepts")}]},
            "instructions": {"giveaway_phrases": str(root / "giveaway_phrases.yaml")}}


def shipped_project() -> dict[str, Any] | None:
    """The repository's own data, when every piece of it is there."""
    needed = [CONFIGS / "taxonomy.yaml", CONFIGS / "giveaway_phrases.yaml", PROMPTS / "offline"]
    if not all(path.exists() for path in needed) or not list((CONFIGS / "concepts").glob("*.yaml")):
        return None
    return {"taxonomy": str(CONFIGS / "taxonomy.yaml"), "prompts_dir": str(PROMPTS),
            "concepts": {"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                         "max_per_sub_category": 3},
            "instructions": {"giveaway_phrases": str(CONFIGS / "giveaway_phrases.yaml")}}


def write_config(folder: Path, **overrides: Any) -> Path:
    """A small offline build config with every export; ``overrides`` replace top-level keys."""
    folder.mkdir(parents=True, exist_ok=True)
    project = shipped_project()
    if project is None:
        inline = folder / "project"
        if not inline.exists():
            inline.mkdir()
            write_inline_project(inline)
        project = inline_project_paths(inline)
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
