"""Prompt files: the text a researcher edits, versioned by sha256.

Prompts live in ``prompts/`` as files, never in code. Each use is recorded, so the run's
resolved config lists the hash of every prompt that shaped its data. Placeholders use
``$name`` (``string.Template``) so that JSON examples with braces need no escaping.

A prompt file may end with a section headed by the line ``## If the model declines``: what is
said to a model that refused the prompt (why the dataset needs the answer), sent once before
the request goes to a fallback model or is rejected as ``refused``. The section is not part of
the prompt itself; the file's hash covers both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from mis_data.core.config import ConfigError, parse_yaml, sha256_text

DECLINE_HEADING = "## If the model declines"


@dataclass(frozen=True)
class Prompt:
    """One prompt file as read: its name under the prompts folder, its whole text (the decline
    section included) and the sha256 of that text."""

    name: str
    text: str
    sha256: str

    @property
    def parts(self) -> tuple[str, str | None]:
        """The prompt, and the answer to a refusal when the file has one."""
        head, found, tail = self.text.partition(f"\n{DECLINE_HEADING}\n")
        return (head.rstrip("\n") + "\n", tail.strip() + "\n") if found else (self.text, None)

    def render(self, **values: Any) -> str:
        """The prompt without its decline section, every ``$name`` filled from ``values``; a
        placeholder with no value is a ``ConfigError`` naming the file."""
        return self._fill(self.parts[0], values)

    def reframe(self, **values: Any) -> str | None:
        """The file's answer to a refusal, filled like the prompt; None when it has none."""
        text = self.parts[1]
        return None if text is None else self._fill(text, values)

    def _fill(self, text: str, values: dict[str, Any]) -> str:
        try:
            return Template(text).substitute(_AsText(values))
        except KeyError as error:
            raise ConfigError(f"prompt {self.name}: no value for placeholder ${error.args[0]}") from None


class _AsText(Mapping[str, str]):
    """The values as text, each converted when a placeholder asks for it: a request's values
    also carry facts for the offline backend (every sibling pair of a sub-category) that no
    placeholder names, and turning those into text for every prompt was a tenth of a build."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._raw = values

    def __getitem__(self, key: str) -> str:
        return str(self._raw[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass
class PromptLibrary:
    """Loads prompt files on first use and remembers the hash of each one used."""

    root: Path
    used: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, Prompt] = field(default_factory=dict)
    _parsed: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Prompt:
        """The prompt file ``name`` under ``root``, read once. Every call records its hash in
        ``used``, so a run lists exactly the prompts it asked with; a missing or empty file is a
        ``ConfigError``."""
        if name not in self._cache:
            path = self.root / name
            if not path.is_file():
                raise ConfigError(f"{path}: prompt file not found")
            text = path.read_text(encoding="utf-8")
            if not text.strip():
                raise ConfigError(f"{path}: prompt file is empty")
            self._cache[name] = Prompt(name=name, text=text, sha256=sha256_text(text))
        prompt = self._cache[name]
        self.used[name] = prompt.sha256
        return prompt

    def data(self, name: str) -> Any:
        """A YAML prompt file (e.g. the offline backend's templates), parsed once per library:
        the offline backend reads its rule files for every answer, and parsing them each time
        was a third of an offline build. Callers only read the result, never change it."""
        prompt = self.get(name)  # records the use, as every read does
        if name not in self._parsed:
            self._parsed[name] = parse_yaml(prompt.text)
        return self._parsed[name]


def check_prompt_files(root: Path) -> None:
    """Every file of a prompts folder has text: an empty one would send models an empty
    prompt (or give the offline backend no rules) well after the run folder was made."""
    if not root.is_dir():
        raise ConfigError(f"{root}: prompts folder not found")
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            try:
                empty = not path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(f"{path}: prompt file cannot be read as UTF-8 text ({error})") from None
            if empty:
                raise ConfigError(f"{path}: prompt file is empty")
