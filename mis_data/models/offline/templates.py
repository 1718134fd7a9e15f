"""Slot-aware question templates of the offline backend (``prompts/offline/instructions.yaml``).

A template is one harmful request with two roles, ``a`` and ``b``, and the kinds each role
accepts (``configs/kinds.yaml`` names, or group names such as ``site`` or ``human``). It is used
only for a concept pair whose kinds fit, in either image order, so a person verb never lands on
a place and "them" only ever points at people or at several things. One template renders every
form of the question the way MIS's step 2 sees it:

- harmful: the objects by name ("the crowbar");
- replaced: the objects by the kind's reference phrase ("the tool in the first image");
- act: the request as a verb phrase, for the label ("break into the display window with the
  crowbar").

Tokens: ``{a}`` / ``{b}`` the role's words; ``{a.them}`` "it" or "them"; ``{a.their}`` "its" or
"their"; ``{a.is}`` "is" or "are", agreeing with the role's words just before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mis_data.config import ConfigError
from mis_data.models.offline.grammar import capitalize, definite, is_plural, tidy

TOKEN = re.compile(r"\{([ab])(?:\.(them|their|is))?\}")
ROLES = ("a", "b")
HUMAN_GROUP = "human"


@dataclass(frozen=True)
class Filler:
    """What a role is replaced by in one form, and how pronouns and verbs agree with it."""

    text: str
    plural: bool
    human: bool

    def word(self, token: str | None) -> str:
        if token is None:
            return self.text
        many = self.plural or self.human  # people are "them" (singular they) in every form
        return {"them": "them" if many else "it", "their": "their" if many else "its",
                "is": "are" if self.plural else "is"}[token]


@dataclass(frozen=True)
class Template:
    id: str
    sub_category: str
    slots: Mapping[str, frozenset[str]]
    body: str
    act: str
    help: str
    fallback: bool = False
    topics: tuple[str, ...] = ()  # word starts one of the pair's objects must contain; () = any

    def fits(self, kind_a: str, kind_b: str) -> bool:
        return kind_a in self.slots["a"] and kind_b in self.slots["b"]

    def about(self, names: str) -> bool:
        """Whether the pair's object names are on this template's topic (a kinds match alone
        would put an eating-disorder question on a gambling pair)."""
        lowered = names.casefold()
        return not self.topics or any(re.search(rf"\b{re.escape(topic)}", lowered)
                                      for topic in self.topics)

    def fixed_words(self) -> set[str]:
        """The template's own words (outside the tokens), for the object-name leak check."""
        return set(re.findall(r"[a-z]+", TOKEN.sub(" ", f"{self.body} {self.act}").casefold()))


def render(text: str, fillers: Mapping[str, Filler]) -> str:
    return TOKEN.sub(lambda m: fillers[m.group(1)].word(m.group(2)), text)


@dataclass(frozen=True)
class Draft:
    """One chosen template for one pair: which role is which image, and its opener."""

    template: Template
    reverse: bool  # role a shows the second image
    opener: str

    def fillers(self, first: Filler, second: Filler) -> dict[str, Filler]:
        return {"a": second, "b": first} if self.reverse else {"a": first, "b": second}

    def question(self, first: Filler, second: Filler) -> str:
        body = render(self.template.body, self.fillers(first, second))
        return tidy(capitalize(self.opener.replace("{body}", body)))

    def act(self, first: Filler, second: Filler) -> str:
        return tidy(render(self.template.act, self.fillers(first, second)))


def object_filler(name: str, kind: str, human_kinds: frozenset[str]) -> Filler:
    return Filler(definite(name), is_plural(name), kind in human_kinds)


def phrase_filler(phrase: str, kind: str, human_kinds: frozenset[str]) -> Filler:
    return Filler(phrase, is_plural(phrase), kind in human_kinds)


class TemplateBook:
    """The parsed template file: kind groups, openers, templates per sub-category."""

    def __init__(self, data: Mapping[str, Any], kinds: Iterable[str] | None = None) -> None:
        groups = {str(name): list(members) for name, members in data.get("kind_groups", {}).items()}
        known = set(kinds) if kinds is not None else {
            kind for members in groups.values() for kind in members if kind not in groups}
        self.groups = {name: self._expand(name, groups, known) for name in groups}
        self.human = self.groups.get(HUMAN_GROUP, frozenset({"person", "group"}))
        self.openers: list[str] = [str(opener) for opener in data.get("openers", [])]
        self.animate_verbs: list[str] = [str(v) for v in data.get("animate_only_verbs", [])]
        self.templates: dict[str, list[Template]] = {}
        for section, fallback in (("templates", False), ("fallback", True)):
            for sub, entries in (data.get(section) or {}).items():
                for entry in entries:
                    self.templates.setdefault(sub, []).append(
                        self._template(sub, entry, groups, known, fallback))
        if not self.openers or any("{body}" not in opener for opener in self.openers):
            raise ConfigError("offline instructions: every opener needs {body}")

    @staticmethod
    def _expand(name: str, groups: Mapping[str, list[str]], known: set[str],
                seen: tuple[str, ...] = ()) -> frozenset[str]:
        if name in known and name not in groups:
            return frozenset({name})
        if name not in groups or name in seen:
            raise ConfigError(f"offline instructions: unknown kind or group {name!r}")
        return frozenset().union(*(TemplateBook._expand(member, groups, known, (*seen, name))
                                   for member in groups[name]))

    def _template(self, sub: str, entry: Mapping[str, Any], groups: Mapping[str, list[str]],
                  known: set[str], fallback: bool) -> Template:
        where = f"offline instructions: {sub} / {entry.get('id', '?')}"
        try:
            slots = {role: frozenset().union(*(self._expand(str(name), groups, known)
                                               for name in entry["slots"][role]))
                     for role in ROLES}
            template = Template(id=str(entry["id"]), sub_category=sub, slots=slots,
                                body=str(entry["body"]), act=str(entry["act"]),
                                help=str(entry["help"]), fallback=fallback,
                                topics=tuple(str(topic) for topic in entry.get("topics", [])))
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{where}: missing or malformed field {error}") from None
        for role in ROLES:
            if f"{{{role}}}" not in template.body or f"{{{role}}}" not in template.act:
                raise ConfigError(f"{where}: body and act must both use {{{role}}}")
        leftover = TOKEN.sub("", f"{template.body} {template.act}")
        if "{" in leftover or "}" in leftover:
            raise ConfigError(f"{where}: unknown token in {leftover!r}")
        return template

    def for_sub_category(self, sub: str) -> list[Template]:
        return self.templates.get(sub, [])

    def compatible(self, sub: str, kind1: str, kind2: str) -> list[tuple[Template, bool]]:
        """Every template of ``sub`` that fits the pair, with ``reverse`` when it fits only with
        its roles swapped (role ``a`` on the second image)."""
        found = []
        for template in self.for_sub_category(sub):
            if template.fits(kind1, kind2):
                found.append((template, False))
            elif template.fits(kind2, kind1):
                found.append((template, True))
        return found
