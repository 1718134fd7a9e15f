"""Upload the Hugging Face export (``export/hf``) to the Hub as a dataset repository.

The folder is already the exact repository (Parquet with embedded images + README card), so a
push is one ``create_repo`` and one ``upload_folder`` (docs/formats.md §4.6) — nothing is rebuilt
on the way. Before uploading, the folder is loaded back with ``datasets`` so a broken export
never reaches the Hub. The token comes from ``HF_TOKEN`` only and never appears in output,
logs or exception messages. ``api`` is injectable so tests replace the Hub with a fake.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.export.hf_check import validate_hf

TOKEN_ENV = "HF_TOKEN"
REPO_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class HubError(Exception):
    """The Hub refused or failed an upload; the message is one line and holds no secret."""


@dataclass
class PushResult:
    """The files a push sends (a dry run: would send) and, once ``uploaded``, the dataset's ``url``."""

    repo: str
    files: list[tuple[str, int]] = field(default_factory=list)
    uploaded: bool = False
    url: str | None = None

    @property
    def total_bytes(self) -> int:
        """The size of all files to upload, for the summary line."""
        return sum(size for _, size in self.files)


def folder_files(folder: Path) -> list[tuple[str, int]]:
    """What ``upload_folder`` would send: every file, relative path and size, hidden ones skipped."""
    return [(path.relative_to(folder).as_posix(), path.stat().st_size)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".")
                                          for part in path.relative_to(folder).parts)]


def hf_folder(path: Path) -> Path:
    """A run folder's ``export/hf``, or ``path`` itself when it already is a repository folder."""
    for candidate in (path / "export" / "hf", path):
        if (candidate / "README.md").is_file():
            return candidate
    raise ConfigError(f"{path}: no Hugging Face export found (expected export/hf/README.md); "
                      "run `mis-data export RUN_DIR --format hf` first")


def _scrub(text: str, token: str | None) -> str:
    text = " ".join(str(text).split())[:300]
    return text.replace(token, "***") if token else text


def push(folder: Path, repo: str, private: bool = False, dry_run: bool = False,
         api: Any = None) -> PushResult:
    """Check, then upload ``folder`` to the dataset repo ``repo``; ``dry_run`` calls nothing."""
    folder = hf_folder(Path(folder))
    if not REPO_PATTERN.match(repo):
        raise ConfigError(f"--repo {repo!r}: expected OWNER/NAME")
    report = validate_hf(folder)
    if not report.ok:
        raise ConfigError(f"{folder}: the export does not load ({len(report.problems)} problem(s), "
                          f"first: {report.problems[0]}); see `mis-data validate {folder} --format hf`")
    result = PushResult(repo=repo, files=folder_files(folder))
    if dry_run:
        return result
    token = os.environ.get(TOKEN_ENV) or None
    if token is None:
        raise ConfigError(f"no Hugging Face token: set the environment variable {TOKEN_ENV} "
                          "(a write token from https://huggingface.co/settings/tokens)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset",
                          commit_message="Upload MIS dataset export (mis-data)")
    except Exception as error:  # HfHubHTTPError, network errors: one clean line, token scrubbed
        status = getattr(getattr(error, "response", None), "status_code", None)
        code = f" (HTTP {status})" if status else ""
        raise HubError(f"upload to {repo} failed{code}: {type(error).__name__}: "
                       f"{_scrub(str(error).splitlines()[0] if str(error) else '', token)}") from None
    result.uploaded = True
    result.url = f"https://huggingface.co/datasets/{repo}"
    return result
