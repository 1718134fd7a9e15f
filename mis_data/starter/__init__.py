"""The shipped project: configs (taxonomy, concepts, demo and API configs) and prompts.

They live inside the package so that ``pip install mis-data`` carries them: ``mis-data init``
copies this folder to start a project, and ``shipped_path`` finds a shipped file wherever the
package is installed. In the repository, the top-level ``configs/`` and ``prompts/`` are links
to these folders, so a researcher edits them where DESIGN.md says they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STARTER = Path(__file__).resolve().parent


def shipped_path(*parts: str) -> Path:
    """A file or folder of the shipped project, e.g. ``shipped_path("configs", "taxonomy.yaml")``."""
    return STARTER.joinpath(*parts)


def write_starter(folder: Path, force: bool = False) -> list[Path]:
    """Copy the shipped configs and prompts into ``folder`` to start a project of one's own.

    Existing files are never overwritten unless ``force``: a researcher's edited prompts are
    worth more than a fresh copy. Returns the files written.
    """
    sources = [path for part in ("configs", "prompts") for path in sorted((STARTER / part).rglob("*"))
               if path.is_file() and "__pycache__" not in path.parts]
    targets = [folder / path.relative_to(STARTER) for path in sources]
    clashes = [target for target in targets if target.exists()]
    if clashes and not force:
        raise FileExistsError(f"{clashes[0]} already exists (and {len(clashes) - 1} more); "
                              "use --force to overwrite")
    for source, target in zip(sources, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return targets
