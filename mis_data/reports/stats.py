"""Summary tables and one plot of a finished run: what a researcher checks before trusting the data.

Everything is read from the run folder alone (split files, rejects, manifest, the resolved
config.yaml), never from a model or the original config file, so a run copied to another machine
gives the same report. The text and the PNG
are deterministic (sorted rows, no timestamps, fixed dpi, no "Software" tag in the PNG), so two
calls on the same run give the same bytes and a changed report means changed data.
"""

from __future__ import annotations

import dataclasses
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

from mis_data.core.ids import parent_id, sample_of
from mis_data.core.records import (
    CELLS,
    OUTCOMES,
    RATED_STEPS,
    STEP_NAMES,
    ConceptRecord,
    LateStep,
    RejectReason,
    RejectRecord,
)
from mis_data.core.rundir import RunDir, read_json_or_none, write_bytes_atomic, write_text_atomic
from mis_data.core.samples import GENERAL, OPTIONAL_SPLITS, SPLITS, Sample, read_splits
from mis_data.core.targets import SIDES, achieved_counts, read_targets
from mis_data.core.taxonomy import MisReference, load_reference
from mis_data.reports.counts import stage_column_width

STATS_DIR = "stats"
def shown_splits(facts: RunFacts) -> tuple[str, ...]:
    """Every split, except an optional one (twins) that this run does not have."""
    return tuple(split for split in SPLITS
                 if split not in OPTIONAL_SPLITS or facts.splits.get(split))
SPLIT_STAGE = LateStep.splits.value  # samples the split step excluded (leakage, quota)
SPLIT_COLORS = {"train": "#4e79a7", "val": "#76b7b2", "easy": "#59a14f", "hard": "#e15759",
                "real": "#b07aa1", "twins": "#ff9da7"}
# One fixed colour per stage, so a stage looks the same in every run's plot.
STAGE_COLORS = dict(zip((*STEP_NAMES, SPLIT_STAGE), ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6",
                                                 "#d37295"),
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
    sub_of: dict[str, str]  # concept pair id -> the sub-category it was made for


def read_facts(run: RunDir) -> RunFacts:
    """Read what the report needs from the run folder once; works on an unfinished run."""
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
                    usage=usage, backend=backend, splits_written=bool(split_manifest),
                    sub_of={concept.id: concept.sub_category for concept in concepts})


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

    shown = shown_splits(facts)

    def cells(name: str, counter: Counter[str]) -> list[str]:
        return [name, *(str(counter[split]) for split in shown), str(sum(counter.values()))]

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
    lines += _table([header, *shown, "total"], rows, width)
    return lines + cell_lines(facts)


def cell_lines(facts: RunFacts) -> list[str]:
    """Samples per HoliSafe cell and split, for a build with benign twins."""
    counts = {split: Counter(s.cell for s in facts.splits.get(split, []) if s.cell)
              for split in shown_splits(facts)}
    cells = [cell for cell in CELLS if any(counter[cell] for counter in counts.values())]
    if not cells:
        return []
    rows = [[cell, *(str(counts[split][cell]) for split in counts)] for cell in cells]
    return ["", "samples per HoliSafe cell (SiSt→S: benign twins):",
            *_table(["cell", *counts], rows, 10)]


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
    """The rejects table by stage and reason, with the split step's exclusions and a total."""
    counts = reject_counts(facts)
    if not counts:
        return ["rejects: none"]
    stage_width = stage_column_width(counts)
    rows = []
    for stage, reasons in counts.items():
        for index, (reason, count) in enumerate(sorted(reasons.items())):
            rows.append([f"{stage if index == 0 else '':<{stage_width}}{reason}", str(count)])
    rows.append(["total", str(sum(sum(reasons.values()) for reasons in counts.values()))])
    width = max(len(row[0]) for row in rows) + 2
    return ["rejects by stage and reason (splits = samples excluded when splitting):",
            *_table(["stage".ljust(stage_width) + "reason", "count"], rows, width)]


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
    sub_of = facts.sub_of
    reached: dict[str, set[str]] = defaultdict(set)
    for stage in stages:
        for item_id in run.output_ids(stage):
            sample = sample_of(item_id)
            sub = sub_of.get(parent_id(sample)) or (GENERAL if stage == "general" else None)
            if sub:
                reached[sub].add(sample)
    refused: Counter[str] = Counter()
    for reject in facts.rejects:
        if reject.stage not in stages:
            continue
        sample = sample_of(reject.id)
        sub = reject.sub_category or sub_of.get(parent_id(sample)) or "(unknown)"
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


def outcome_counts(facts: RunFacts) -> dict[tuple[str, str, str], Counter[str]]:
    """(step, model, sub-category) -> requests sent by outcome, over every session."""
    counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for session in (facts.usage or {}).get("sessions", []):
        for row in session.get("outcomes", []):
            key = (row["task"], row["model"], row["sub_category"])
            counts[key].update({what: int(row.get(what, 0)) for what in OUTCOMES})
    return counts


def outcome_lines(facts: RunFacts) -> list[str]:
    """Refusal and block rates per step and model, then per sub-category for the steps where
    a model refused or a provider blocked (requests actually sent; cached answers are not)."""
    counts = outcome_counts(facts)
    if not counts:
        return ["refusals and blocks per model: no requests sent to a model server"]
    by_step: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for (task, model, _sub), counter in counts.items():
        by_step[(task, model)].update(counter)
    rows = [[f"{task:<20}{model}", str(sum(c.values())), str(c["refused"]), str(c["blocked"]),
             str(c["failed"]), _rate(c["refused"], sum(c.values())),
             _rate(c["blocked"], sum(c.values()))]
            for (task, model), c in sorted(by_step.items())]
    width = max(len(row[0]) for row in rows) + 2
    lines = ["refusals and blocks per step and model (requests sent; failed: no answer after the "
             "retries):",
             *_table(["step                model", "sent", "refused", "blocked", "failed",
                      "refused%", "blocked%"], rows, width)]
    declined = sorted(key for key, c in by_step.items() if c["refused"] or c["blocked"])
    if not declined:
        return lines
    subs = sorted({sub for (_task, _model, sub) in counts})
    table = []
    for sub in subs:
        row = [sub]
        for task, model in declined:
            c = counts.get((task, model, sub), Counter())
            row.append(f"{_rate(c['refused'] + c['blocked'], sum(c.values()))}")
        table.append(row)
    columns = [f"{task.removeprefix('instruction_')[:12]}/{model[:10]}" for task, model in declined]
    lines += ["", "refused or blocked per sub-category (share of the requests sent):",
              *_table(["sub-category", *columns], table, max(len(sub) for sub in subs) + 2)]
    return lines


def target_lines(run: RunDir, facts: RunFacts) -> list[str]:
    """Target beside achieved per sub-category and side, the rounds run and their notes."""
    rounds = read_targets(run)
    if not rounds:
        return ["targets: none set"]
    last = rounds[-1]
    achieved = achieved_counts([s for members in facts.splits.values() for s in members])
    sides = [side for side in SIDES if side in last["targets"]]
    subs = sorted({sub for side in sides for sub in last["targets"][side]})
    rows = [[sub, *(cell for side in sides for cell in (
        str(last["targets"][side].get(sub, 0)), str(achieved[side].get(sub, 0))))]
            for sub in subs]
    header = ["sub-category", *(cell for side in sides for cell in (f"{side} want", "have"))]
    lines = [f"targets: {len(rounds)} round(s) run; wanted beside what the splits hold:",
             *_table(header, rows, max(len(sub) for sub in subs) + 2)]
    for entry in rounds:
        if entry["top_up"]:
            lines.append(f"  after round {entry['round']}: more concepts for " + ", ".join(
                f"{sub} +{n}" for sub, n in entry["top_up"].items()))
        lines += [f"  note: {note}" for note in entry["notes"]]
    return lines


def _stage_order(stage: str) -> tuple[int, str]:
    return (STEP_NAMES.index(stage) if stage in STEP_NAMES else len(STEP_NAMES), stage)


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def usage_lines(facts: RunFacts) -> list[str]:
    """Requests, tokens and cost over all sessions, per stage and model, then per server."""
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
    return lines + server_lines(facts)


def server_lines(facts: RunFacts) -> list[str]:
    """Requests, errors and mean latency per server of each model, over all sessions (what a
    role spread over several endpoints shows: which server carried how much, and which failed)."""
    totals: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for session in (facts.usage or {}).get("sessions", []):
        for row in session.get("by_server", []):
            counter = totals[(row["model"], row["server"])]
            counter["requests"] += row["requests"]
            counter["errors"] += row["errors"]
            counter["seconds"] += row["mean_latency_s"] * row["requests"]
    if not totals:
        return []
    rows = [[f"{model}  {server}", str(c["requests"]), str(c["errors"]),
             f"{c['seconds'] / c['requests']:.3f}" if c["requests"] else "-"]
            for (model, server), c in sorted(totals.items())]
    width = max(len(row[0]) for row in rows) + 2
    return ["", "requests per server (sent, not cached):",
            *_table(["model  server", "requests", "errors", "mean s"], rows, width)]


@dataclass(frozen=True)
class Diversity:
    """How templated a set of questions reads (MIS's test text was criticized as templated)."""

    questions: int
    top_opener: str  # the most common first three words
    top_opener_share: float  # its share of the questions, 0-1
    prefixes_per_100: float  # distinct first-six-word prefixes per 100 questions


def question_diversity(questions: list[str]) -> Diversity:
    """How templated ``questions`` read: the top three-word opener's share and distinct six-word prefixes."""
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
    """The question diversity table, one row per side (train, test)."""
    rows = [[side, str(d.questions), f"{100 * d.top_opener_share:.1f}%", f"{d.prefixes_per_100:.1f}",
             f'"{d.top_opener}"'] for side, d in diversity_by_side(facts).items()]
    lines = ["question diversity (top 3-word opener share; distinct 6-word prefixes per 100 "
             "questions):"]
    for row in rows:
        lines.append(f"  {row[0]:<8}{row[1]:>9}{row[2]:>9}{row[3]:>9}   top opener {row[4]}")
    return [lines[0], f"  {'side':<8}{'questions':>9}{'top 3w':>9}{'6w/100':>9}", *lines[1:]]


def stats_text(run: RunDir, facts: RunFacts, reference: MisReference | None = None) -> str:
    """The whole text ``mis-data stats`` prints; ``reference`` defaults to the shipped MIS reference."""
    reference = reference or load_reference()
    sections = [
        [f"run folder: {run.path}   backend: {facts.backend}"],
        split_lines(facts),
        diversity_lines(facts),
        split_mix_lines(facts, reference),
        test_share_lines(facts, reference),
        reject_lines(facts),
        rate_lines(run, facts, reference),
        refusal_lines(run, facts),
        outcome_lines(facts),
        target_lines(run, facts),
        usage_lines(facts),
        plan_lines(run, facts),
        [f"plot: {STATS_DIR}/stats.png"],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


# -- plot ------------------------------------------------------------------------------------

def draw_plot(facts: RunFacts, reference: MisReference | None = None) -> bytes:
    """Sub-categories per split, test shares and the split mix beside MIS's, and (only when
    there are any) rejects by reason: no panel is drawn without something to show."""
    reference = reference or load_reference()
    has_rejects = "rejects" in plot_panels(facts)
    figure = Figure(figsize=(14, 10), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 1.3], width_ratios=[3, 2])
    subs = figure.add_subplot(grid[0, 0])
    shares = figure.add_subplot(grid[0, 1], sharey=subs)
    mix = figure.add_subplot(grid[1, 0] if has_rejects else grid[1, :])
    order = reference_order(facts, reference)
    _draw_sub_categories(subs, facts, order)
    _draw_test_shares(shares, facts, reference, order)
    _draw_split_mix(mix, facts, reference)
    if has_rejects:
        _draw_rejects(figure.add_subplot(grid[1, 1]), facts)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


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
    reference = load_reference()
    facts = with_reference_rows(read_facts(run), reference)
    text = stats_text(run, facts, reference)
    plot = run.path / STATS_DIR / "stats.png"
    write_bytes_atomic(plot, draw_plot(facts, reference))
    write_text_atomic(run.path / STATS_DIR / "stats.txt", text)
    return StatsResult(text=text, plot=plot)


# -- beside MIS: its published counts, rates per stage and sub-category, plan vs actual -------

def with_reference_rows(facts: RunFacts, reference: MisReference) -> RunFacts:
    """Every MIS sub-category gets a row, also one the run has no sample of (a zero is news)."""
    category_of = {**reference.category_of, **facts.category_of}
    return dataclasses.replace(facts, category_of=category_of)


def reference_order(facts: RunFacts, reference: MisReference) -> list[tuple[str, str]]:
    """(category, sub-category) rows: MIS's Table 3 order, then anything else the run has."""
    rows = [(category, sub) for category, subs in reference.test.items() for sub in subs]
    listed = {sub for _, sub in rows}
    rows += [(category, sub) for category, subs in sub_categories_by_category(facts.category_of)
             for sub in subs if sub not in listed]
    return rows


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def split_mix_lines(facts: RunFacts, reference: MisReference) -> list[str]:
    """Each split's share of the run beside MIS's (val is counted with train: MIS has none)."""
    here = {split: len(facts.splits.get(split, [])) for split in SPLITS}
    here["train"] += here.pop("val")
    total, mis_total = sum(here.values()), sum(reference.splits.values())
    rows = [[split, str(here.get(split, 0)), _pct(here.get(split, 0), total),
             str(reference.splits.get(split, 0)), _pct(reference.splits.get(split, 0), mis_total)]
            for split in reference.splits]
    rows.append(["total", str(total), _pct(total, total), str(mis_total), "100.0%"])
    return ["split mix beside MIS (train includes val; MIS: Table 19 and the MIS_Test card):",
            *_table(["split", "here", "share", "MIS", "share"], rows, 10)]


def test_share_lines(facts: RunFacts, reference: MisReference) -> list[str]:
    """Test (easy + hard) counts and shares per category and sub-category beside MIS Table 3."""
    here = Counter(sample.sub_category for split in ("easy", "hard")
                   for sample in facts.splits.get(split, []))
    mis = reference.test_counts
    total, mis_total = sum(here.values()), sum(mis.values())
    rows, order = [], reference_order(facts, reference)
    width = max(len(sub) for _, sub in order) + 4
    for category in dict.fromkeys(category for category, _ in order):
        subs = [sub for cat, sub in order if cat == category]
        n, m = sum(here[s] for s in subs), sum(mis.get(s, 0) for s in subs)
        rows.append([category, str(n), _pct(n, total), str(m), _pct(m, mis_total),
                     _diff(n, total, m, mis_total)])
        rows += [["  " + sub, str(here[sub]), _pct(here[sub], total), str(mis.get(sub, 0)),
                  _pct(mis.get(sub, 0), mis_total), _diff(here[sub], total, mis.get(sub, 0), mis_total)]
                 for sub in subs]
    rows.append(["total", str(total), _pct(total, total), str(mis_total), "100.0%", ""])
    return ["test (easy + hard) per category and sub-category beside MIS Table 3 "
            "(diff: share here minus MIS's, in points):",
            *_table(["category / sub-category", "here", "share", "MIS", "share", "diff"], rows, width)]


def _diff(part: int, whole: int, mis_part: int, mis_whole: int) -> str:
    if not whole or not mis_whole:
        return "-"
    return f"{100 * (part / whole - mis_part / mis_whole):+.1f}"


RATE_STAGES = RATED_STEPS
SHORT = {"instructions": "instruct.", "judgements": "judges"}


def stage_entries(run: RunDir, facts: RunFacts) -> dict[str, dict[str, set[str]]]:
    """Per stage, the items that reached it, by the sub-category their pair was made for.

    An item is what the stage decides on: a question (``<pair>-<k>``) or, for images, a pair
    (slot ids ``<pair>.1`` count for their pair). Items are the stage's records and its rejects;
    dedup has no records, so what reached it is every question the judges could see plus the
    ones it dropped.
    """
    sub_of = facts.sub_of

    def unit(stage: str, item_id: str) -> str:
        return sample_of(item_id) if stage in ("images", "pairs") else item_id

    reached: dict[str, dict[str, set[str]]] = {stage: defaultdict(set) for stage in RATE_STAGES}
    for stage in RATE_STAGES:
        ids = run.output_ids(stage) if stage != "dedup" else set()
        for item_id in ids:
            sub = sub_of.get(parent_id(unit(stage, item_id)))
            if sub:
                reached[stage][sub].add(unit(stage, item_id))
    for reject in facts.rejects:
        if reject.stage in reached:
            item = unit(reject.stage, reject.id)
            sub = sub_of.get(parent_id(item)) or reject.sub_category or "(unknown)"
            reached[reject.stage][sub].add(item)
    for sub, items in reached["judgements"].items():
        reached["dedup"][sub] |= items
    return reached


def rate_lines(run: RunDir, facts: RunFacts, reference: MisReference) -> list[str]:
    """Reject rate of each stage per sub-category, and the refusal rate, as percentages."""
    reached = stage_entries(run, facts)
    rejected: dict[str, Counter[str]] = {stage: Counter() for stage in RATE_STAGES}
    refused: Counter[str] = Counter()
    sub_of = facts.sub_of
    for reject in facts.rejects:
        sub = sub_of.get(parent_id(sample_of(reject.id))) or reject.sub_category or "(unknown)"
        if reject.stage in rejected:
            rejected[reject.stage][sub] += 1
        if reject.reason == RejectReason.refused:
            refused[sub] += 1
    stages = [stage for stage in RATE_STAGES if any(reached[stage].values())]
    if not stages:
        return ["reject rates: no stage has processed anything yet"]
    subs = [sub for _, sub in reference_order(facts, reference)]
    subs += sorted({sub for stage in stages for sub in reached[stage]} - set(subs))
    first = reached[stages[0]]

    def cells(name: str, pick: Any) -> list[str]:
        row = [name]
        for stage in stages:
            n = sum(len(reached[stage][s]) for s in pick)
            row.append(_pct(sum(rejected[stage][s] for s in pick), n))
        row.append(_pct(sum(refused[s] for s in pick), sum(len(first[s]) for s in pick)))
        return row

    rows = [cells(sub, [sub]) for sub in subs] + [cells("total", subs)]
    counts = ["items", *(str(sum(len(v) for v in reached[stage].values())) for stage in stages), ""]
    width = max(len(sub) for sub in subs) + 2
    return [f"reject rates per stage and sub-category (rejected / items that reached the stage; "
            f"refused: refusals / items of {stages[0]}):",
            *_table(["sub-category", *(SHORT.get(s, s) for s in stages), "refused"],
                    [*rows, counts], width)]


def plan_lines(run: RunDir, facts: RunFacts) -> list[str]:
    """Planned (``plan.json``, written by ``build``) beside actual requests, tokens and cost."""
    plan = read_json_or_none(run.path / "plan.json")
    if not plan:
        return ["plan vs actual: no plan.json (the run was built before `mis-data plan` existed)"]
    actual: dict[str, Counter[str]] = defaultdict(Counter)
    for session in (facts.usage or {}).get("sessions", []):
        for row in session.get("by_stage_model", []):
            for key in ("requests", "input_tokens", "output_tokens", "cost_usd"):
                actual[row["stage"]][key] += row.get(key, 0)
    rows = []
    for stage, planned in sorted(plan["stages"].items(), key=lambda item: _stage_order(item[0])):
        got = actual.get(stage, Counter())
        rows.append([stage, str(planned["requests"]), str(int(got["requests"])),
                     f"{planned['input_tokens']:,}", f"{int(got['input_tokens']):,}",
                     f"{planned['output_tokens']:,}", f"{int(got['output_tokens']):,}",
                     f"{planned['cost_usd']:.4f}", f"{got['cost_usd']:.4f}"])
    total = plan["total"]
    got_total = sum(actual.values(), Counter())
    rows.append(["total", str(total["requests"]), str(int(got_total["requests"])),
                 f"{total['input_tokens']:,}", f"{int(got_total['input_tokens']):,}",
                 f"{total['output_tokens']:,}", f"{int(got_total['output_tokens']):,}",
                 f"{total['cost_usd']:.4f}", f"{got_total['cost_usd']:.4f}"])
    return ["plan vs actual per stage (plan.json from `build`; actual: requests sent, cache hits "
            "excluded; $):",
            *_table(["stage", "req plan", "actual", "in plan", "actual", "out plan", "actual",
                     "$ plan", "actual"], rows, 14)]


def plot_panels(facts: RunFacts) -> list[str]:
    """The panels the plot draws: rejects only when there are some."""
    panels = ["sub_categories", "test_shares", "split_mix"]
    if any(sum(by_reason.values()) for by_reason in reject_counts(facts).values()):
        panels.append("rejects")
    return panels


def _draw_sub_categories(axes: Any, facts: RunFacts, order: list[tuple[str, str]]) -> None:
    """Samples per sub-category, stacked by split, grouped under their category."""
    labels = [sub for _, sub in order]
    axes.set_title("Samples per sub-category and split")
    left = [0] * len(labels)
    for split in SPLITS:
        members = facts.splits.get(split, [])
        if not members:
            continue
        counts = Counter(sample.sub_category for sample in members)
        values = [counts[sub] for sub in labels]
        axes.barh(range(len(labels)), values, left=left, height=0.7, color=SPLIT_COLORS[split],
                  label=f"{split} ({len(members)})")
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, total in enumerate(left):
        axes.text(total, y, f" {total}", va="center", fontsize=8)
    axes.set_yticks(range(len(labels)), [f"{sub}  [{category}]" for category, sub in order],
                    fontsize=9)
    axes.set_ylim(len(labels) + 0.9, -0.6)  # top to bottom, with a free row for the legend
    axes.set_xlabel("samples")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlim(0, max([*left, 1]) * 1.12)
    if any(facts.splits.get(split) for split in SPLITS):
        axes.legend(loc="lower right", fontsize=8, frameon=False)
    else:
        axes.text(0.5, 0.5, "no finished samples yet", ha="center", va="center",
                  transform=axes.transAxes)
    axes.spines[["top", "right"]].set_visible(False)


def _draw_test_shares(axes: Any, facts: RunFacts, reference: MisReference,
                      order: list[tuple[str, str]]) -> None:
    """Each sub-category's share of the test split (easy + hard): this run beside MIS Table 3."""
    here = Counter(sample.sub_category for split in ("easy", "hard")
                   for sample in facts.splits.get(split, []))
    mis = reference.test_counts
    total, mis_total = sum(here.values()), sum(mis.values())
    y = range(len(order))
    run_share = [100 * here[sub] / total if total else 0 for _, sub in order]
    mis_share = [100 * mis.get(sub, 0) / mis_total for _, sub in order]
    axes.barh([i - 0.2 for i in y], run_share, height=0.4, color="#59a14f",
              label=f"this run (easy+hard = {total})")
    axes.barh([i + 0.2 for i in y], mis_share, height=0.4, color="#bab0ac",
              label=f"MIS Table 3 ({mis_total})")
    axes.set_title("Test share per sub-category: this run vs MIS")
    axes.set_xlabel("% of easy + hard")
    axes.tick_params(axis="y", labelleft=False)
    axes.legend(loc="lower right", fontsize=8, frameon=False)
    axes.spines[["top", "right"]].set_visible(False)


def _draw_split_mix(axes: Any, facts: RunFacts, reference: MisReference) -> None:
    """Two 100 % bars: the split mix of this run (val with train) and of MIS."""
    here = {split: len(facts.splits.get(split, [])) for split in ("train", "easy", "hard", "real")}
    here["train"] += len(facts.splits.get("val", []))
    rows = [("MIS", reference.splits), ("this run", here)]
    for y, (_, counts) in enumerate(rows):
        total = sum(counts.values()) or 1
        left = 0.0
        for split in ("train", "easy", "hard", "real"):
            share = 100 * counts.get(split, 0) / total
            axes.barh(y, share, left=left, color=SPLIT_COLORS[split], height=0.6,
                      label=split if y == 0 else None)
            if share >= 4:
                axes.text(left + share / 2, y, f"{split} {share:.0f}%", ha="center", va="center",
                          fontsize=8, color="white")
            left += share
    axes.set_yticks(range(len(rows)), [f"{name} (n={sum(c.values())})" for name, c in rows])
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of samples")
    axes.set_title("Split mix: this run vs MIS (val counted as train)")
    axes.spines[["top", "right"]].set_visible(False)
