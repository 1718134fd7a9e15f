"""The MIS taxonomy (6 categories, 14 sub-categories), loaded from ``configs/taxonomy.yaml``.

The taxonomy is data so that a researcher can extend it without touching code; every concept,
judge vote and export is checked against it. Known spelling variants of the released MIS files
("Cybercrimes", "Identify Theft", ...) are kept as aliases so that external data still validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mis_data.core.config import ConfigError, parse_yaml, read_yaml


@dataclass(frozen=True)
class SubCategory:
    """One sub-category: its canonical name, its category, the description prompts show, and the
    other spellings external data may use for it."""

    name: str
    category: str
    description: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """The loaded taxonomy. Look names up through ``canonical`` or ``get``, which accept aliases
    and any case, rather than comparing strings."""

    sub_categories: tuple[SubCategory, ...]
    category_descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        """Category names in the order of the taxonomy file."""
        return list(self.category_descriptions)

    @property
    def sub_category_names(self) -> list[str]:
        """Canonical sub-category names in the order of the taxonomy file."""
        return [sub.name for sub in self.sub_categories]

    def canonical(self, name: str) -> str | None:
        """The canonical sub-category name for a name or alias (case-insensitive), else None."""
        wanted = name.strip().casefold()
        for sub in self.sub_categories:
            if wanted == sub.name.casefold() or wanted in (a.casefold() for a in sub.aliases):
                return sub.name
        return None

    def get(self, name: str) -> SubCategory:
        """The sub-category for a name or alias; ``KeyError`` when the taxonomy has none."""
        canonical = self.canonical(name)
        if canonical is None:
            raise KeyError(name)
        return next(sub for sub in self.sub_categories if sub.name == canonical)

    def category_of(self, sub_category: str) -> str:
        """The category of a sub-category given by name or alias; ``KeyError`` when unknown."""
        return self.get(sub_category).category

    def describe(self) -> str:
        """The taxonomy as prompt text: one line per sub-category."""
        return "\n".join(
            f"- {sub.category} / {sub.name}: {sub.description}" for sub in self.sub_categories
        )


@dataclass(frozen=True)
class Kind:
    """What kind of thing a concept object is, and how a question refers to its image."""

    name: str
    refer: str
    neutral: str
    plural: bool = False
    animate: bool = False
    what: str = ""

    def reference(self, image: str, *, detoxified: bool = False) -> str:
        """``the tool in the first image``; the neutral form after detoxification."""
        return (self.neutral if detoxified else self.refer).format(image=image)


def load_kinds(path: Path) -> dict[str, Kind]:
    """The kind vocabulary (``configs/kinds.yaml``): every concept's kind1/kind2 must be in it."""
    data = read_yaml(path)
    entries = data.get("kinds") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: expected a 'kinds' mapping")
    kinds = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or "{image}" not in str(entry.get("refer", "")):
            raise ConfigError(f"{path}: kinds.{name}.refer must contain {{image}}")
        refer = str(entry["refer"])
        kinds[str(name)] = Kind(name=str(name), refer=refer,
                                neutral=str(entry.get("neutral", refer)),
                                plural=bool(entry.get("plural", False)),
                                animate=bool(entry.get("animate", False)),
                                what=str(entry.get("what", "")))
    return kinds


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and check a taxonomy file: a category without a name, a sub-category listed twice or
    no sub-category at all is a ``ConfigError`` naming the file."""
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise ConfigError(f"{path}: expected a 'categories' list")
    subs: list[SubCategory] = []
    descriptions: dict[str, str] = {}
    for index, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not category.get("name"):
            raise ConfigError(f"{path}: categories[{index}] needs a name")
        descriptions[category["name"]] = str(category.get("description", ""))
        for sub in category.get("sub_categories") or []:
            if not isinstance(sub, dict) or not sub.get("name"):
                raise ConfigError(f"{path}: a sub-category of {category['name']!r} has no name")
            subs.append(
                SubCategory(
                    name=sub["name"],
                    category=category["name"],
                    description=str(sub.get("description", "")),
                    aliases=tuple(sub.get("aliases") or ()),
                )
            )
    names = [sub.name for sub in subs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: sub-category listed twice: {', '.join(duplicates)}")
    if not subs:
        raise ConfigError(f"{path}: no sub-categories")
    return Taxonomy(sub_categories=tuple(subs), category_descriptions=descriptions)


@dataclass(frozen=True)
class MisReference:
    """MIS's published numbers (``mis_data/reference/mis.yaml``): split sizes and the test
    split per sub-category (Table 3), for ``stats`` and for targets shaped like MIS."""

    splits: dict[str, int]
    test: dict[str, dict[str, int]]  # category -> sub-category -> easy + hard count
    source: str

    @property
    def category_of(self) -> dict[str, str]:
        """Sub-category -> category, as MIS's Table 3 groups them."""
        return {sub: category for category, subs in self.test.items() for sub in subs}

    @property
    def test_counts(self) -> dict[str, int]:
        """Sub-category -> MIS test samples (easy + hard): the weights of a ``shape: mis`` target."""
        return {sub: n for subs in self.test.values() for sub, n in subs.items()}


def load_reference() -> MisReference:
    """MIS's published numbers, read from the package data so that an installed package has them."""
    # One name per ``joinpath``: Python 3.10's ``Traversable.joinpath`` takes a single child.
    text = (resources.files("mis_data").joinpath("reference").joinpath("mis.yaml")
            .read_text(encoding="utf-8"))
    data = parse_yaml(text)
    return MisReference(splits=dict(data["splits"]), test=data["test_sub_categories"],
                        source=" ".join(str(data.get("source", "")).split()))
