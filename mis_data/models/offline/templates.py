"""Slot-aware question templates of the offline backend (``prompts/offline/instructions.yaml``).

A template is one harmful request with two roles, ``a`` and ``b`` (three or four, adding ``c``
and ``d``, for samples with more images), and the kinds each role accepts (``configs/kinds.yaml``
names, or group names such as ``site`` or ``human``). It is used only for a concept with as many
objects as it has roles, whose kinds fit in some image order, so a person verb never lands on a
place and "them" only ever points at people or at several things. One template renders every
form of the question the way MIS's step 2 sees it:

- harmful: the objects by name ("the crowbar");
- replaced: the objects by the kind's reference phrase ("the tool in the first image");
- act: the request as a verb phrase, for the label ("break into the display window with the
  crowbar").

The slot kinds say what a role may be; ``frames`` (per-kind checks) say what the words around a
role ask of it, whatever template they are in: "hooked on {x}" needs something one can take
(a substance or food), "the kids at {x}" a place or a scene. A frame narrows the kinds of every
role it matches, so a template is never used for an object its words make no sense with ("get
the kids at the closet hooked on the grow tent"). ``frame_violations`` runs the same check on a
finished question, for audits.

Tokens: ``{a}`` / ``{b}`` the role's words; ``{a.them}`` "it" or "them"; ``{a.their}`` "its" or
"their"; ``{a.is}`` "is" or "are", agreeing with the role's words just before it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.models.offline.grammar import capitalize, definite, is_plural, tidy

TOKEN = re.compile(r"\{([abcd])(?:\.(them|their|is))?\}")
ANY_TOKEN = r"\{[abcd](?:\.\w+)?\}"
ROLES = ("a", "b", "c", "d")  # a template uses the first two, three or four
HUMAN_GROUP = "human"


@dataclass(frozen=True)
class Filler:
    """What a role is replaced by in one form, and how pronouns and verbs agree with it."""

    text: str
    plural: bool
    human: bool

    def word(self, token: str | None) -> str:
        """The text for a token: the filler's words when ``token`` is None, else the pronoun or verb
        that agrees with them."""
        if token is None:
            return self.text
        many = self.plural or self.human  # people are "them" (singular they) in every form
        return {"them": "them" if many else "it", "their": "their" if many else "its",
                "is": "are" if self.plural else "is"}[token]


@dataclass(frozen=True)
class Template:
    """One parsed template: the kinds each role accepts (groups expanded), its body and act, and the
    help group its label uses."""

    id: str
    sub_category: str
    slots: Mapping[str, frozenset[str]]
    body: str
    act: str
    help: str
    fallback: bool = False
    topics: tuple[str, ...] = ()  # word starts one of the pair's objects must contain; () = any
    avoid: tuple[str, ...] = ()  # word starts none of the pair's objects may contain

    @cached_property
    def roles(self) -> tuple[str, ...]:
        """The roles the template uses, in order (a, b, then c, d); worked out once, since
        every fit test and every rendering asks."""
        return tuple(role for role in ROLES if role in self.slots)

    def fits(self, *kinds: str) -> bool:
        """Whether the kinds, in role order (a, b, ...), fit the roles."""
        return len(kinds) == len(self.roles) and all(
            kind in self.slots[role] for role, kind in zip(self.roles, kinds, strict=True))

    def about(self, names: str) -> bool:
        """Whether the pair's object names are on this template's topic (a kinds match alone
        would put an eating-disorder question on a gambling pair)."""
        lowered = names.casefold()
        if any(re.search(rf"\b{re.escape(word)}", lowered) for word in self.avoid):
            return False
        return not self.topics or any(re.search(rf"\b{re.escape(topic)}", lowered)
                                      for topic in self.topics)

    def fixed_words(self) -> set[str]:
        """The template's own words (outside the tokens), for the object-name leak check."""
        return set(self.fixed_word_set)

    @cached_property
    def fixed_word_set(self) -> frozenset[str]:
        """``fixed_words`` worked out once, as a frozen set others may share and cache on."""
        return frozenset(re.findall(r"[a-z]+", TOKEN.sub(" ", f"{self.body} {self.act}").casefold()))


@dataclass(frozen=True)
class Frame:
    """Words around a role and the kinds that make sense there. ``pattern`` is a regular
    expression with ``{x}`` for the role checked and ``{*}`` for any other role."""

    pattern: str
    kinds: frozenset[str]

    def roles_in(self, body: str) -> set[str]:
        """The roles of a template body that this frame checks."""
        found = set()
        for role in ROLES:
            target = rf"\{{{role}(?:\.\w+)?\}}"
            regex = self.pattern.replace("{x}", target).replace("{*}", ANY_TOKEN)
            if re.search(regex, body, re.IGNORECASE):
                found.add(role)
        return found

    def misfits(self, question: str, objects: Mapping[str, str]) -> list[str]:
        """The objects (name -> kind) a finished question uses in this frame with a kind that
        does not fit, as ``"<name> (<kind>)"``."""
        bad = []
        for name, kind in objects.items():
            if kind in self.kinds:
                continue
            regex = (self.pattern.replace("{x}", rf"(?:the )?{re.escape(name)}")
                     .replace("{*}", r"the [\w' -]+?"))
            if re.search(regex, question, re.IGNORECASE):
                bad.append(f"{name} ({kind})")
        return bad


def frame_violations(frames: Iterable[Frame], question: str, objects: Mapping[str, str]) -> list[str]:
    """Every object a question uses where its kind makes no sense, as ``"<frame>: <name>
    (<kind>)"`` (the per-kind check on a finished question, named objects)."""
    return [f"{frame.pattern}: {bad}" for frame in frames for bad in frame.misfits(question, objects)]


def render(text: str, fillers: Mapping[str, Filler]) -> str:
    """Fill every token of ``text`` from ``fillers`` (role -> filler); a role with no filler raises
    KeyError."""
    return TOKEN.sub(lambda m: fillers[m.group(1)].word(m.group(2)), text)


@dataclass(frozen=True)
class Draft:
    """One chosen template for one concept: which image each role shows, and its opener.

    ``order[i]`` is the image (0-based) of role ``i`` (a, b, ...): ``(1, 0)`` puts role a on the
    second image of a pair."""

    template: Template
    order: tuple[int, ...]
    opener: str

    def fillers(self, *images: Filler) -> dict[str, Filler]:
        """Role -> filler, putting each image on the role this draft's ``order`` gives it."""
        return {role: images[slot] for role, slot in zip(self.template.roles, self.order,
                                                         strict=True)}

    def question(self, *images: Filler) -> str:
        """The whole question with the images as given (named or replaced), opener included and
        tidied."""
        body = render(self.template.body, self.fillers(*images))
        return tidy(capitalize(self.opener.replace("{body}", body)))

    def act(self, *images: Filler) -> str:
        """The request as a verb phrase with the images as given, for the label."""
        return tidy(render(self.template.act, self.fillers(*images)))


def object_filler(name: str, kind: str, human_kinds: frozenset[str]) -> Filler:
    """A filler naming the object ("the crowbar"), agreeing in number with the name."""
    return Filler(definite(name), is_plural(name), kind in human_kinds)


def phrase_filler(phrase: str, kind: str, human_kinds: frozenset[str]) -> Filler:
    """A filler using the kind's reference phrase as written ("the tool in the first image")."""
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
        self.frames = [Frame(str(entry["match"]), frozenset().union(
                           *(self._expand(str(kind), groups, known) for kind in entry["kinds"])))
                       for entry in data.get("frames") or []]
        self.templates: dict[str, list[Template]] = {}
        self._compatible: dict[tuple[str, ...], tuple[tuple[Template, tuple[int, ...]], ...]] = {}
        for section, fallback in (("templates", False), ("fallback", True),
                                  ("templates_3", False), ("fallback_3", True),
                                  ("fallback_4", True)):
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
            roles = ROLES[:len(entry["slots"])]
            if sorted(entry["slots"]) != list(roles) or len(roles) < 2:
                raise ConfigError(f"{where}: slots must be a, b (then c, d), got "
                                  f"{', '.join(sorted(entry['slots']))}")
            slots = {role: frozenset().union(*(self._expand(str(name), groups, known)
                                               for name in entry["slots"][role]))
                     for role in roles}
            for frame in self.frames:  # what the words around a role make sense with
                for role in frame.roles_in(str(entry["body"])) & set(slots):
                    slots[role] = slots[role] & frame.kinds
            template = Template(id=str(entry["id"]), sub_category=sub, slots=slots,
                                body=str(entry["body"]), act=str(entry["act"]),
                                help=str(entry["help"]), fallback=fallback,
                                topics=tuple(str(topic) for topic in entry.get("topics", [])),
                                avoid=tuple(str(word) for word in entry.get("avoid", [])))
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{where}: missing or malformed field {error}") from None
        for role in template.roles:
            if f"{{{role}}}" not in template.body or f"{{{role}}}" not in template.act:
                raise ConfigError(f"{where}: body and act must both use {{{role}}}")
        leftover = TOKEN.sub("", f"{template.body} {template.act}")
        unused = sorted({match.group(1) for match in TOKEN.finditer(f"{template.body} {template.act}")}
                        - set(template.roles))
        if "{" in leftover or "}" in leftover or unused:
            raise ConfigError(f"{where}: unknown token in {template.body!r}")
        return template

    def for_sub_category(self, sub: str) -> list[Template]:
        """The sub-category's templates, fallbacks included; empty for an unknown one."""
        return self.templates.get(sub, [])

    def compatible(self, sub: str, *kinds: str) -> list[tuple[Template, tuple[int, ...]]]:
        """Every template of ``sub`` with one role per object that fits the objects' kinds, with
        the first image order that fits (the given order first: for a pair, ``(0, 1)``, else
        ``(1, 0)`` with role ``a`` on the second image). The book does not change once read, so
        each sub-category and kinds are matched once, and every later pair of them reuses it."""
        key = (sub, *kinds)
        if key not in self._compatible:
            self._compatible[key] = tuple(self._fitting(sub, kinds))
        return list(self._compatible[key])

    def _fitting(self, sub: str, kinds: tuple[str, ...]) -> list[tuple[Template, tuple[int, ...]]]:
        found = []
        for template in self.for_sub_category(sub):
            if len(template.roles) != len(kinds):
                continue
            order = next((order for order in itertools.permutations(range(len(kinds)))
                          if template.fits(*(kinds[slot] for slot in order))), None)
            if order is not None:
                found.append((template, order))
        return found
