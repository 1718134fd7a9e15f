"""Summary tables and one plot of a finished run: what a researcher checks before trusting the data.

Everything is read from the run folder alone (split files, rejects, manifest, the resolved
config.yaml), never from a model or the original config file, so a run copied to another machine
gives the same report. The text and the PNG
are deterministic (sorted rows, no timestamps, fixed dpi, no "Software" tag in the PNG), so two
calls on the same run give the same bytes and a changed report means changed data.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mis_data.records import STEP_NAMES, ConceptRecord, RejectReason, RejectRecord
from mis_data.rundir import RunDir, read_json_or_none, write_bytes_atomic, write_text_atomic
from mis_data.splits import GENERAL, SPLITS, Sample, read_splits

STATS_DIR = "stats"
COLUMNS = (*SPLITS, "total")
SPLIT_STAGE = "splits"  # pseudo-stage for samples the split step excluded (leakage, quota)
SPLIT_COLORS = {"train": "#4e79a7", "val": "#76b7b2", "easy": "#59a14f", "hard": "#e15759",
                "real": "#b07aa1"}
# One fixed colour per stage, so a stage looks the same in every run's plot.
STAGE_COLORS = dict(zip((*STEP_NAMES, SPLIT_STAGE), ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6"),
                        strict=True))
DPI = 100


@dataclass(frozen=True)
class StatsResult:
    """The printed report and where the plot was written."""

    text: str
    plot: Path


@dataclass(frozen=True)
class RunFacts:
    """What the tables and the plot are drawn from, read once."""

    splits: dict[str, list[Sample]]
    category_of: dict[str, str]  # sub-category -> category
    rejects: list[RejectRecord]
    excluded_by_reason: dict[str, int]  # from splits/manifest.json
    usage: dict[str, Any] | None
    backend: str
    splits_written: bool


def read_facts(run: RunDir) -> RunFacts:
    concepts = run.read("concepts", ConceptRecord)
    splits = read_splits(run)
    category_of = {concept.sub_category: concept.category for concept in concepts}
    for members in splits.values():
        category_of.update((sample.sub_category, sample.category) for sample in members)
    manifest = read_json_or_none(run.manifest_path) or {}
    usage = manifest.get("usage") or read_json_or_none(run.path / "usage.json")
    backend = manifest.get("backend") or run.config().config.backend
    split_manifest = read_json_or_none(run.splits_dir / "manifest.json") or {}
    return RunFacts(splits=splits, category_of=category_of, rejects=run.rejects(),
                    excluded_by_reason=split_manifest.get("excluded_by_reason", {}),
                    usage=usage, backend=backend, splits_written=bool(split_manifest))


def _table(header: list[str], rows: Iterable[list[str]], first_width: int) -> list[str]:
    """Left-aligned first column, right-aligned numbers: readable in any terminal."""
    def line(cells: list[str]) -> str:
        return "  " + cells[0].ljust(first_width) + "".join(f"{cell:>9}" for cell in cells[1:])
    return [line(header), *(line(row) for row in rows)]


def sub_categories_by_category(category_of: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Categories sorted by name (General last), each with its sorted sub-categories."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for sub, category in category_of.items():
        grouped[category].append(sub)
    order = sorted(grouped, key=lambda category: (category == GENERAL, category))
    return [(category, sorted(grouped[category])) for category in order]


def split_lines(facts: RunFacts) -> list[str]:
    """Counts per sub-category (grouped under its category) and split, with totals."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split, members in facts.splits.items():
        for sample in members:
            counts[sample.sub_category][split] += 1
    groups = sub_categories_by_category(facts.category_of)
    header = "category / sub-category"
    width = max([len(header), *(len(sub) + 2 for _, subs in groups for sub in subs),
                 *(len(category) for category, _ in groups)]) + 2

    def cells(name: str, counter: Counter[str]) -> list[str]:
        return [name, *(str(counter[split]) for split in SPLITS), str(sum(counter.values()))]

    rows, grand = [], Counter[str]()
    for category, subs in groups:
        subtotal = sum((counts[sub] for sub in subs), Counter[str]())
        grand += subtotal
        rows.append(cells(category, subtotal))
        rows.extend(cells("  " + sub, counts[sub]) for sub in subs)
    rows.append(cells("total", grand))
    lines = ["samples per split (categories, then their sub-categories):"]
    if not facts.splits_written:
        lines = ["samples per split: splits not written yet (the build has not finished)"]
    lines += _table([header, *COLUMNS], rows, width)
    return lines


def reject_counts(facts: RunFacts) -> dict[str, Counter[str]]:
    """Current rejects per stage and reason, plus the split step's exclusions."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for reject in facts.rejects:
        counts[reject.stage][reject.reason.value] += 1
    for reason, count in facts.excluded_by_reason.items():
        counts[SPLIT_STAGE][reason] += int(count)
    order = [stage for stage in (*STEP_NAMES, SPLIT_STAGE) if stage in counts]
    order += sorted(stage for stage in counts if stage not in order)
    return {stage: counts[stage] for stage in order}


def reject_lines(facts: RunFacts) -> list[str]:
    counts = reject_counts(facts)
    if not counts:
        return ["rejects: none"]
    rows = []
    for stage, reasons in counts.items():
        for index, (reason, count) in enumerate(sorted(reasons.items())):
            rows.append([f"{stage if index == 0 else '':<14}{reason}", str(count)])
    rows.append(["total", str(sum(sum(reasons.values()) for reasons in counts.values()))])
    width = max(len(row[0]) for row in rows) + 2
    return ["rejects by stage and reason (splits = samples excluded when splitting):",
            *_table(["stage         reason", "count"], rows, width)]


def model_stages(facts: RunFacts) -> list[str]:
    """Stages that sent requests to a model, from the usage meter (and any refusal's stage)."""
    stages = {reject.stage for reject in facts.rejects if reject.reason == RejectReason.refused}
    for session in (facts.usage or {}).get("sessions", []):
        for row in session.get("by_stage_model", []):
            if row.get("requests", 0) or row.get("cached", 0):
                stages.add(row["stage"])
    return sorted(stages, key=_stage_order)


def refusal_lines(run: RunDir, facts: RunFacts) -> list[str]:
    """Refused rejects over the samples that reached a model stage, per sub-category.

    A sample "reached a model" when any model stage wrote a record or a reject for it; ids like
    ``<sample>.1`` (an image slot) or ``<sample>.real`` count for their sample.
    """
    stages = model_stages(facts)
    sub_of = {concept.id: concept.sub_category for concept in run.read("concepts", ConceptRecord)}
    reached: dict[str, set[str]] = defaultdict(set)
    for stage in stages:
        for item_id in run.output_ids(stage):
            sample = item_id.split(".")[0]
            sub = sub_of.get(sample) or (GENERAL if stage == "general" else None)
            if sub:
                reached[sub].add(sample)
    refused: Counter[str] = Counter()
    for reject in facts.rejects:
        if reject.stage not in stages:
            continue
        sample = reject.id.split(".")[0]
        sub = reject.sub_category or sub_of.get(sample) or "(unknown)"
        reached[sub].add(sample)
        if reject.reason == RejectReason.refused:
            refused[sub] += 1
    total_reached = sum(len(ids) for ids in reached.values())
    where = ", ".join(stages) if stages else "no model stage recorded"
    if not refused:
        return [f"refusals: none ({total_reached} samples reached a model; stages: {where})"]
    rows = [[sub, str(len(reached[sub])), str(refused[sub]), _rate(refused[sub], len(reached[sub]))]
            for sub in sorted(reached)]
    total_refused = sum(refused.values())
    rows.append(["total", str(total_reached), str(total_refused), _rate(total_refused, total_reached)])
    width = max(len(row[0]) for row in rows) + 2
    return [f"refusal rates (refused rejects / samples that reached a model; stages: {where}):",
            *_table(["sub-category", "reached", "refused", "rate"], rows, width)]


def _stage_order(stage: str) -> tuple[int, str]:
    return (STEP_NAMES.index(stage) if stage in STEP_NAMES else len(STEP_NAMES), stage)


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def usage_lines(facts: RunFacts) -> list[str]:
    total = (facts.usage or {}).get("total") or {}
    requests = int(total.get("requests", 0))
    if facts.backend == "offline":
        return [f"usage: offline backend: no tokens, no cost ({requests} offline requests)"]
    if not facts.usage:
        return ["usage: not recorded yet (the build has not finished a session)"]
    lines = [f"usage (backend {facts.backend}, all sessions): {requests} requests "
             f"({int(total.get('cached', 0))} cached), {int(total.get('input_tokens', 0)):,} input / "
             f"{int(total.get('output_tokens', 0)):,} output tokens, {int(total.get('images', 0))} "
             f"images, ${float(total.get('cost_usd', 0.0)):.4f}"]
    by_key: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for session in facts.usage.get("sessions", []):
        for row in session.get("by_stage_model", []):
            for field in ("requests", "input_tokens", "output_tokens", "cost_usd"):
                by_key[(row["stage"], row["model"])][field] += row.get(field, 0)
    if by_key:
        rows = [[f"{stage:<14}{model}", str(int(c["requests"])), f"{int(c['input_tokens']):,}",
                 f"{int(c['output_tokens']):,}", f"{c['cost_usd']:.4f}"]
                for (stage, model), c in sorted(by_key.items(), key=lambda kv: _stage_order(kv[0][0]))]
        width = max(len(row[0]) for row in rows) + 2
        lines += _table(["stage         model", "requests", "input", "output", "cost $"], rows, width)
    return lines


@dataclass(frozen=True)
class Diversity:
    """How templated a set of questions reads (MIS's test text was criticized as templated)."""

    questions: int
    top_opener: str  # the most common first three words
    top_opener_share: float  # its share of the questions, 0-1
    prefixes_per_100: float  # distinct first-six-word prefixes per 100 questions


def question_diversity(questions: list[str]) -> Diversity:
    def words(question: str, count: int) -> str:
        return " ".join(re.findall(r"[a-z0-9'-]+", question.casefold())[:count])

    if not questions:
        return Diversity(0, "", 0.0, 0.0)
    opener, top = Counter(words(q, 3) for q in questions).most_common(1)[0]
    prefixes = len({words(q, 6) for q in questions})
    return Diversity(len(questions), opener, top / len(questions), 100 * prefixes / len(questions))


def diversity_by_side(facts: RunFacts) -> dict[str, Diversity]:
    """Train (train + val) and test (easy + hard; real reuses their questions), safety samples only."""
    sides = {"train": ("train", "val"), "test": ("easy", "hard")}
    return {side: question_diversity([sample.question for split in splits
                                      for sample in facts.splits.get(split, [])
                                      if sample.category != GENERAL])
            for side, splits in sides.items()}


def diversity_lines(facts: RunFacts) -> list[str]:
    rows = [[side, str(d.questions), f"{100 * d.top_opener_share:.1f}%", f"{d.prefixes_per_100:.1f}",
             f'"{d.top_opener}"'] for side, d in diversity_by_side(facts).items()]
    lines = ["question diversity (top 3-word opener share; distinct 6-word prefixes per 100 "
             "questions):"]
    for row in rows:
        lines.append(f"  {row[0]:<8}{row[1]:>9}{row[2]:>9}{row[3]:>9}   top opener {row[4]}")
    return [lines[0], f"  {'side':<8}{'questions':>9}{'top 3w':>9}{'6w/100':>9}", *lines[1:]]


def stats_text(run: RunDir, facts: RunFacts) -> str:
    sections = [
        [f"run folder: {run.path}   backend: {facts.backend}"],
        split_lines(facts),
        diversity_lines(facts),
        reject_lines(facts),
        refusal_lines(run, facts),
        usage_lines(facts),
        [f"plot: {STATS_DIR}/stats.png"],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


# -- plot ------------------------------------------------------------------------------------

def draw_plot(facts: RunFacts) -> bytes:
    """Two panels: samples per category and split (grouped bars), rejects per reason by stage."""
    figure = Figure(figsize=(13, 5.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, width_ratios=[3, 2])
    _draw_categories(left, facts)
    _draw_rejects(right, facts)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _draw_categories(axes: Any, facts: RunFacts) -> None:
    categories = [category for category, _ in sub_categories_by_category(facts.category_of)]
    splits = [split for split in SPLITS if facts.splits.get(split)]
    axes.set_title("Samples per category and split")
    if not categories or not splits:
        axes.text(0.5, 0.5, "no finished samples", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    width = 0.8 / len(splits)
    for index, split in enumerate(splits):
        counts = Counter(sample.category for sample in facts.splits[split])
        positions = [i + (index - (len(splits) - 1) / 2) * width for i in range(len(categories))]
        bars = axes.bar(positions, [counts[c] for c in categories], width,
                        label=f"{split} ({len(facts.splits[split])})", color=SPLIT_COLORS[split])
        axes.bar_label(bars, fontsize=7, padding=1)
    axes.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
    axes.set_ylabel("samples")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(0, axes.get_ylim()[1] * 1.2)  # headroom for the legend row
    axes.legend(loc="upper left", ncols=len(splits), frameon=False, fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)


def _draw_rejects(axes: Any, facts: RunFacts) -> None:
    counts = reject_counts(facts)
    axes.set_title("Rejects by reason (stacked by stage)")
    reasons = sorted({reason for by_reason in counts.values() for reason in by_reason},
                     key=lambda r: (-sum(c[r] for c in counts.values()), r))
    if not reasons:
        axes.text(0.5, 0.5, "no rejects", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    left = [0] * len(reasons)
    for stage, by_reason in counts.items():
        values = [by_reason[reason] for reason in reasons]
        axes.barh(range(len(reasons)), values, left=left, label=stage, height=0.6,
                  color=STAGE_COLORS.get(stage, "#bab0ac"))
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, total in enumerate(left):
        axes.text(total, y, f" {total}", va="center", fontsize=8)
    axes.set_yticks(range(len(reasons)), reasons, fontsize=10 if len(reasons) <= 12 else 8)
    axes.invert_yaxis()
    axes.set_xlabel("records")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(0, max(left) * 1.15 + 0.5)  # room for the totals written after each bar
    axes.legend(title="stage", loc="best", fontsize=8)
    axes.spines[["top", "right"]].set_visible(False)


def write_stats(run_dir: Path) -> StatsResult:
    """Compute the report, write ``stats/stats.png`` and ``stats/stats.txt``, return both."""
    run = RunDir(Path(run_dir))
    run.config()  # not a run folder: one clear error now
    facts = read_facts(run)
    text = stats_text(run, facts)
    plot = run.path / STATS_DIR / "stats.png"
    write_bytes_atomic(plot, draw_plot(facts))
    write_text_atomic(run.path / STATS_DIR / "stats.txt", text)
    return StatsResult(text=text, plot=plot)
