"""Targets per sub-category (``targets:``) and the top-up rounds that reach them.

Hosted models refuse some sub-categories far more than others (self-harm, sexual content), and
judges discard or move samples, so a build that makes the same number of concepts everywhere
ends up skewed. With targets, the build measures after each round what the splits would hold
per sub-category (train = train + val, test = easy + hard; twins, MIS-real and the general mix
do not count), and gives each sub-category under target more concepts for the next round, as
many as its own yield so far says it needs. The top-up is decided only once every stage of a
round is done, from the records alone, and written before the next round starts (the concepts
carry their ``round``), so a resumed build makes the same decisions as one that never stopped.

Rounds end when every target is met, ``max_rounds`` have run, no source has more concepts for
a sub-category that is short (the shipped list is used up and no ``generated`` source is
configured: said in the notes), or the cost cap stops the build. ``RUN/targets.json`` keeps
every round's measurement, for ``stats`` and the manifest.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from mis_data.core.config import BuildConfig, ShapedTarget, Target
from mis_data.core.rundir import RunDir, dump_json, read_json_or_none, write_text_atomic
from mis_data.core.taxonomy import Taxonomy, load_reference

SIDES = ("train", "test")
SIDE_SPLITS = {"train": ("train", "val"), "test": ("easy", "hard")}
TARGETS_FILE = "targets.json"
MARGIN = 1.25  # concepts asked for beyond the measured need, for the next round's losses


def build_sub_categories(config: BuildConfig, taxonomy: Taxonomy) -> list[str]:
    """The sub-categories this build makes samples for."""
    named = config.concepts.sub_categories
    if named:
        return [taxonomy.canonical(name) or name for name in named]
    return list(taxonomy.sub_category_names)


def spread(total: int, weights: dict[str, float]) -> dict[str, int]:
    """``total`` split in proportion to ``weights`` (largest remainder; ties by name)."""
    whole = sum(weights.values())
    exact = {sub: total * weight / whole for sub, weight in weights.items()}
    counts = {sub: math.floor(value) for sub, value in exact.items()}
    left = total - sum(counts.values())
    for sub in sorted(exact, key=lambda s: (-(exact[s] - counts[s]), s))[:left]:
        counts[sub] += 1
    return counts


def per_sub_category(target: Target, subs: list[str]) -> dict[str, int]:
    """One side's target for each of ``subs``: a number applies to each one; a
    ``ShapedTarget`` spreads its total (``mis``: weighted by MIS's test counts, 1 for a
    sub-category MIS does not list)."""
    if not isinstance(target, ShapedTarget):
        return dict.fromkeys(subs, target)
    if target.shape == "uniform":
        return spread(target.total, dict.fromkeys(subs, 1.0))
    table = load_reference().test_counts
    return spread(target.total, {sub: float(table.get(sub, 0)) or 1.0 for sub in subs})


def resolve_targets(config: BuildConfig, taxonomy: Taxonomy) -> dict[str, dict[str, int]]:
    """Samples wanted, as side (train, test) -> sub-category -> count; empty without ``targets:``."""
    settings = config.targets
    if settings is None:
        return {}
    subs = build_sub_categories(config, taxonomy)
    return {side: per_sub_category(target, subs) for side in SIDES
            if (target := getattr(settings, side)) is not None}


@dataclass
class Progress:
    """One round's measurement: targets, what the splits would hold, concepts so far."""

    round: int
    targets: dict[str, dict[str, int]]
    achieved: dict[str, dict[str, int]]
    concepts: dict[str, int]
    top_up: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def deficit(self, side: str, sub: str) -> int:
        """Samples ``sub`` still lacks on ``side``; 0 once its target is met or passed."""
        return max(0, self.targets[side][sub] - self.achieved[side].get(sub, 0))

    def short(self) -> dict[str, dict[str, int]]:
        """sub-category -> side -> samples still missing, for every sub-category under target."""
        found: dict[str, dict[str, int]] = {}
        for side, wanted in self.targets.items():
            for sub in wanted:
                if self.deficit(side, sub):
                    found.setdefault(sub, {})[side] = self.deficit(side, sub)
        return found

    @property
    def met(self) -> bool:
        """True when no sub-category is short on any side: no further round is needed."""
        return not self.short()


def achieved_counts(samples: list[Any]) -> dict[str, dict[str, int]]:
    """Samples per side and sub-category (side -> sub-category -> count), from split members
    (``splits.Sample``)."""
    counts: dict[str, Counter[str]] = {side: Counter() for side in SIDES}
    for sample in samples:
        if sample.twin_of is not None or sample.source == "general":
            continue
        for side, splits in SIDE_SPLITS.items():
            if sample.split in splits:
                counts[side][sample.sub_category] += 1
    return {side: dict(sorted(counter.items())) for side, counter in counts.items()}


def concepts_needed(progress: Progress, sub: str, missing: dict[str, int]) -> int:
    """New concepts for one short sub-category: its deficit over its own yield per concept so
    far, on the side that needs most, with a quarter more for the losses of the next round
    (refusals, discards, siblings split apart: the trim keeps the target either way); with no
    yield yet, as many as it has (at least 2). At most twice what it has (and 4), so one bad
    round cannot ask for hundreds."""
    have = progress.concepts.get(sub, 0)
    cap = max(2 * have, 4)
    wanted = 0
    for side, deficit in missing.items():
        got = progress.achieved[side].get(sub, 0)
        wanted = max(wanted, math.ceil(MARGIN * deficit * have / got) if got and have
                     else max(have, 2))
    return max(1, min(wanted, cap))


def record_progress(run: RunDir, progress: Progress) -> None:
    """Add (or replace) this round's entry in ``RUN/targets.json``."""
    rounds = [entry for entry in read_targets(run) if entry["round"] != progress.round]
    rounds.append(asdict(progress))
    rounds.sort(key=lambda entry: entry["round"])
    write_text_atomic(run.path / TARGETS_FILE, dump_json({"rounds": rounds}))


def read_targets(run: RunDir) -> list[dict[str, Any]]:
    """Every round recorded in ``RUN/targets.json``, in round order; empty before the first."""
    return (read_json_or_none(run.path / TARGETS_FILE) or {}).get("rounds", [])
