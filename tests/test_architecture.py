"""The house rules of the package, read from its imports: each layer imports only what lies
below it, no stage imports another stage, nothing imports the CLI, and no private module of a
library is used. A change that breaks one names the module and the import."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import PACKAGE

# What each part of the package may import (besides itself and the data-only ``starter``):
# cli -> pipeline -> stages -> (models, images) -> core; reports, export and eval read core
# and benchmarks, never a stage or the build's pipeline.
ALLOWED = {
    "core": set(),
    "models": {"core", "images"},
    "images": {"core"},
    "benchmarks": {"core", "images"},
    "stages": {"core", "models", "images"},
    "export": {"core", "images", "benchmarks"},
    "reports": {"core", "images", "benchmarks", "export"},
    "eval": {"core", "models", "images", "benchmarks", "export", "reports"},
    "pipeline": {"core", "models", "images", "benchmarks", "stages", "export", "reports"},
    "starter": set(),
}
# Modules of ``stages/`` that are not stages: what every stage may share.
STAGE_SHARED = {"base", "panel", "drawing", "tasks"}
# A stage split over files: its helpers belong to it alone.
STAGE_HELPERS = {"concept_models": "concepts", "concept_rules": "concepts"}


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in a file, relative ones resolved."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def stage_of(module: str) -> str | None:
    """The stage a module of ``stages/`` belongs to, or None for shared modules."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "stages" or parts[2] in STAGE_SHARED:
        return None
    return STAGE_HELPERS.get(parts[2], parts[2])


def violations(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        source = module_name(path, package)
        layer = part_of(source)
        for line, target in imports_of(path, package):
            where = f"{path.relative_to(package.parent)}:{line} imports {target}"
            if not target.startswith("mis_data.") and any(part.startswith("_") and part != "__future__"
                                                           for part in target.split(".")[:-1]):
                found.append(f"{where}: a private module of a library")
            if not target.startswith("mis_data.") or layer in ("cli", "__main__", ""):
                continue
            other = part_of(target)
            if other == "cli":
                found.append(f"{where}: nothing imports the CLI")
            elif other not in (layer, "starter") and other not in ALLOWED.get(layer, set()):
                found.append(f"{where}: {layer} may import only {sorted(ALLOWED.get(layer, ()))}")
            elif layer == "stages" and stage_of(source) and stage_of(target) \
                    and stage_of(source) != stage_of(target) and source != "mis_data.stages":
                found.append(f"{where}: a stage imports another stage")
    return found


def test_imports_run_downward_only() -> None:
    assert violations() == []


def test_the_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: an upward import, a stage importing a stage and a private
    module are each named; a stage importing the shared base is not."""
    fake = tmp_path / "mis_data"
    (fake / "core").mkdir(parents=True)
    (fake / "stages").mkdir()
    (fake / "models").mkdir()
    (fake / "core" / "bad.py").write_text("from mis_data.pipeline.runner import run_build\n")
    (fake / "stages" / "labels.py").write_text("from mis_data.stages.twins import TwinStage\n")
    (fake / "stages" / "twins.py").write_text("from mis_data.stages.base import Stage\n")
    (fake / "models" / "wire.py").write_text("from openai.lib._pydantic import to_strict_json_schema\n")
    found = violations(fake)
    assert any("core/bad.py:1 imports mis_data.pipeline.runner.run_build" in v for v in found)
    assert any("stages/labels.py:1" in v and "another stage" in v for v in found)
    assert any("models/wire.py:1" in v and "private" in v for v in found)
    assert not any("stages/twins.py" in v for v in found)
