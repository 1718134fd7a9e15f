"""The shipped project: configs (taxonomy, concepts, demo and API configs) and prompts.

They live inside the package so that ``pip install mis-data`` carries them: ``mis-data init``
copies this folder to start a project, and ``shipped_path`` finds a shipped file wherever the
package is installed. In the repository, the top-level ``configs/`` and ``prompts/`` are links
to these folders, so a researcher edits them where DESIGN.md says they are.
"""

from __future__ import annotations

from pathlib import Path

STARTER = Path(__file__).resolve().parent


def shipped_path(*parts: str) -> Path:
    """A file or folder of the shipped project, e.g. ``shipped_path("configs", "taxonomy.yaml")``."""
    return STARTER.joinpath(*parts)
