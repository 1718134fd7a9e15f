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
the kids at the closet hooked on the grow tent"). A frame can also say what the act needs of the
object whatever its kind (``needs``: ``tags``, object properties read from the kind and the
object's name): "film people undressing with {x}" needs something with a camera, "steal {x}"
something worth taking, "attack whoever is inside {x}" a place with an inside; a template is only
used for objects that have them, so it never asks to "steal the keyless car relay device using
the car" or to film with a smart speaker. ``frame_violations`` runs the same checks on a
finished question, for audits.

Tokens: ``{a}`` / ``{b}`` the role's words; ``{a.them}`` "it" or "them"; ``{a.their}`` "its" or
"their"; ``{a.is}`` "is" or "are", agreeing with the role's words just before it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.models.offline.grammar import (
    PREPOSITIONS,
    bare,
    capitalize,
    definite,
    head_noun,
    is_plural,
    tidy,
)

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
    needs: Mapping[str, frozenset[str]] | None = None  # role -> the tags its object must have

    @cached_property
    def roles(self) -> tuple[str, ...]:
        """The roles the template uses, in order (a, b, then c, d); worked out once, since
        every fit test and every rendering asks."""
        return tuple(role for role in ROLES if role in self.slots)

    def fits(self, *kinds: str) -> bool:
        """Whether the kinds, in role order (a, b, ...), fit the roles."""
        return len(kinds) == len(self.roles) and all(
            kind in self.slots[role] for role, kind in zip(self.roles, kinds, strict=True))

    def takes(self, role: str, tags: frozenset[str]) -> bool:
        """Whether an object with ``tags`` has every property the act needs of ``role``."""
        return (self.needs or {}).get(role, frozenset()) <= tags

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


MEASURES = frozenset("""
    stack pile row bag box pair set crate bundle roll bottle can tray bucket carton line lines
    envelope folder sheet packets tin jar glass cup ring
""".split())  # noqa: SIM905 - a word list reads best as text


def has_word(text: str, words: Iterable[str]) -> bool:
    """Whether ``text`` contains one of ``words`` as whole words, a plural allowed (case-blind:
    "card" finds "cards", not "car")."""
    pattern = words_pattern(tuple(words))
    return pattern is not None and pattern.search(text.casefold()) is not None


@lru_cache(maxsize=1024)
def words_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """One compiled pattern for a word list (a tag's words are looked for in every object name;
    one pattern per word would overflow ``re``'s own cache and compile again and again)."""
    if not words:
        return None
    return re.compile(rf"\b(?:{'|'.join(re.escape(word.casefold()) for word in words)})(?:s|es)?\b")


def head(name: str) -> str:
    """The noun an object name is about, past a measure ("stack of ID badges" -> "badges")."""
    noun = head_noun(name)
    rest = bare(name).split(" of ", 1)
    return head_noun(rest[1]) if noun in MEASURES and len(rest) == 2 else noun


def lead(name: str) -> str:
    """The words an object name starts with, up to its first preposition, past a measure: what
    the object is, without where it is or what it shows ("explicit photos on a phone" ->
    "explicit photos", "stack of ID badges" -> "ID badges")."""
    measure = re.match(r"(?:[\w'-]+ )?(\w+) of (.+)", bare(name))
    if measure and measure.group(1).casefold() in MEASURES:
        return lead(measure.group(2))
    words = bare(name).split()
    for index, word in enumerate(words[1:], start=1):
        if word.casefold() in PREPOSITIONS:
            return " ".join(words[:index])
    return " ".join(words)


@dataclass(frozen=True)
class Tag:
    """One object property an act can need: an object has it when its kind is one of ``kinds`` or
    ``words`` has a word of its name, and its name has none of ``unless``. ``part`` says where in
    the name ``words`` are looked for: ``name`` (anywhere), ``lead`` (before the first
    preposition: "explicit photos on a phone" is not a phone) or ``head`` (the head noun, past a
    measure: a "department store perfume shelf" is a shelf, not a store)."""

    kinds: frozenset[str]
    words: tuple[str, ...]
    unless: tuple[str, ...]
    part: str = "name"

    def of(self, name: str, kind: str) -> bool:
        """Whether the object ``name`` of ``kind`` has this property."""
        if has_word(name, self.unless):
            return False
        where = {"name": name, "lead": lead(name), "head": head(name)}[self.part]
        return kind in self.kinds or has_word(where, self.words)


@dataclass(frozen=True)
class Frame:
    """Words around a role, the kinds that make sense there and the tags the act needs of the
    object (``needs``). ``pattern`` is a regular expression with ``{x}`` for the role checked and
    ``{*}`` for any other role; ``kinds`` None means any kind."""

    pattern: str
    kinds: frozenset[str] | None
    needs: frozenset[str] = frozenset()

    def roles_in(self, body: str) -> set[str]:
        """The roles of a template body that this frame checks."""
        return {role for role, regex in self.role_patterns.items() if regex.search(body)}

    @cached_property
    def role_patterns(self) -> dict[str, re.Pattern[str]]:
        """The frame's pattern for each role, compiled once (the book checks every frame against
        every template; there are more of these than ``re`` keeps compiled)."""
        return {role: re.compile(self.pattern.replace("{x}", rf"\{{{role}(?:\.\w+)?\}}")
                                 .replace("{*}", ANY_TOKEN), re.IGNORECASE) for role in ROLES}

    def misfits(self, question: str, objects: Mapping[str, str],
                tags: Callable[[str, str], frozenset[str]] | None = None) -> list[str]:
        """The objects (name -> kind) a finished question uses in this frame with a kind that
        does not fit, or (given ``tags``, name and kind -> the object's tags) without a tag the
        frame needs, as ``"<name> (<kind>)"``."""
        bad = []
        for name, kind in objects.items():
            if (self.kinds is None or kind in self.kinds) and (
                    tags is None or self.needs <= tags(name, kind)):
                continue
            # another role: another object by name, an image reference, or a pronoun
            others = "|".join(re.escape(other) for other in objects if other != name)
            other = rf"(?:(?:the )?(?:{others})|the [\w' -]+? in the \w+ image|them|it|their|its)" \
                if others else r"(?:the [\w' -]+? in the \w+ image|them|it|their|its)"
            regex = (self.pattern.replace("{x}", rf"(?:the )?{re.escape(name)}")
                     .replace("{*}", other))
            if re.search(regex, question, re.IGNORECASE):
                bad.append(f"{name} ({kind})")
        return bad


def frame_violations(frames: Iterable[Frame], question: str, objects: Mapping[str, str],
                     tags: Callable[[str, str], frozenset[str]] | None = None) -> list[str]:
    """Every object a question uses where its kind makes no sense, or, given ``tags``
    (``TemplateBook.tags_of``), where it lacks a property the act needs, as ``"<frame>: <name>
    (<kind>)"`` (the frames' check on a finished question, named objects)."""
    return [f"{frame.pattern}: {bad}" for frame in frames
            for bad in frame.misfits(question, objects, tags)]


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
        self.tags = {str(name): Tag(
            frozenset().union(*(self._expand(str(kind), groups, known)
                                for kind in entry.get("kinds", []))),
            tuple(str(word) for word in entry.get("words", [])),
            tuple(str(word) for word in entry.get("unless", [])), str(entry.get("part", "name")))
            for name, entry in (data.get("tags") or {}).items()}
        if any(tag.part not in ("name", "lead", "head") for tag in self.tags.values()):
            raise ConfigError("offline instructions: a tag's `part` is name, lead or head")
        self.frames = [self._frame(entry, groups, known) for entry in data.get("frames") or []]
        self._tags_of: dict[tuple[str, str], frozenset[str]] = {}
        self.templates: dict[str, list[Template]] = {}
        self._compatible: dict[tuple[Any, ...], tuple[tuple[Template, tuple[int, ...]], ...]] = {}
        for section, fallback in (("templates", False), ("fallback", True),
                                  ("templates_3", False), ("fallback_3", True),
                                  ("fallback_4", True)):
            for sub, entries in (data.get(section) or {}).items():
                for entry in entries:
                    self.templates.setdefault(sub, []).append(
                        self._template(sub, entry, groups, known, fallback))
        if not self.openers or any("{body}" not in opener for opener in self.openers):
            raise ConfigError("offline instructions: every opener needs {body}")

    def _frame(self, entry: Mapping[str, Any], groups: Mapping[str, list[str]],
               known: set[str]) -> Frame:
        needs = frozenset(str(tag) for tag in entry.get("needs", []))
        if needs - set(self.tags):
            raise ConfigError(f"offline instructions: frame {entry.get('match')!r} needs an "
                              f"unknown tag: {', '.join(sorted(needs - set(self.tags)))}")
        kinds = None if "kinds" not in entry else frozenset().union(
            *(self._expand(str(kind), groups, known) for kind in entry["kinds"]))
        return Frame(str(entry["match"]), kinds, needs)

    def tags_of(self, name: str, kind: str) -> frozenset[str]:
        """The properties (``tags``) the object ``name`` of ``kind`` has."""
        key = (name, kind)
        if key not in self._tags_of:
            self._tags_of[key] = frozenset(tag for tag, rule in self.tags.items()
                                           if rule.of(name, kind))
        return self._tags_of[key]

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
            needs: dict[str, frozenset[str]] = {}
            for frame in self.frames:  # what the words around a role make sense with
                for role in frame.roles_in(str(entry["body"])) & set(slots):
                    if frame.kinds is not None:
                        slots[role] = slots[role] & frame.kinds
                    needs[role] = needs.get(role, frozenset()) | frame.needs
            template = Template(id=str(entry["id"]), sub_category=sub, slots=slots,
                                body=str(entry["body"]), act=str(entry["act"]),
                                help=str(entry["help"]), fallback=fallback,
                                topics=tuple(str(topic) for topic in entry.get("topics", [])),
                                avoid=tuple(str(word) for word in entry.get("avoid", [])),
                                needs={role: tags for role, tags in needs.items() if tags})
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

    def compatible(self, sub: str, *kinds: str, names: tuple[str, ...] | None = None
                   ) -> list[tuple[Template, tuple[int, ...]]]:
        """Every template of ``sub`` with one role per object that fits the objects' kinds (and,
        given their ``names``, has the tags the act needs of each role), with the first image
        order that fits (the given order first: for a pair, ``(0, 1)``, else ``(1, 0)`` with
        role ``a`` on the second image). The book does not change once read, so each
        sub-category, kinds and tags are matched once, and every later pair of them reuses it."""
        tags = None if names is None else tuple(
            self.tags_of(name, kind) for name, kind in zip(names, kinds, strict=True))
        key = (sub, kinds, tags)
        if key not in self._compatible:
            self._compatible[key] = tuple(self._fitting(sub, kinds, tags))
        return list(self._compatible[key])

    def _fitting(self, sub: str, kinds: tuple[str, ...], tags: tuple[frozenset[str], ...] | None
                 ) -> list[tuple[Template, tuple[int, ...]]]:
        def fits(template: Template, order: tuple[int, ...]) -> bool:
            return template.fits(*(kinds[slot] for slot in order)) and (
                tags is None or all(template.takes(role, tags[slot])
                                    for role, slot in zip(template.roles, order, strict=True)))

        found = []
        for template in self.for_sub_category(sub):
            if len(template.roles) != len(kinds):
                continue
            order = next((order for order in itertools.permutations(range(len(kinds)))
                          if fits(template, order)), None)
            if order is not None:
                found.append((template, order))
        return found
