"""Reviewers' decisions fed back into a run: drops, moves and resolved ties, with no model call.

MIS step 4 has human experts remove unreasonable, meaningless and duplicate pairs (docs/recipe.md
§1). Here a reviewer marks samples in the gallery; each decision is one JSON line
(``records.ReviewDecision``) in ``RUN/decisions.jsonl``, which is append-only: the log of what
people said, never rewritten. Applying turns the log into run records:

* the **latest** decision per sample wins (by ``at``, then by order in the log); a decision on a
  pair applies to each of its questions, and a later decision on one question overrides it;
* ``review.jsonl`` holds the latest decision of every sample that stays; a dropped sample (or a
  tie resolved to ``discard``) is a reject of stage ``review`` (``dropped_by_reviewer``) whose
  detail says why, who and when. A reject is superseded by a record with its id, so a sample
  kept again after a drop comes back without editing any log;
* a move or a resolved tie appends a JudgementRecord carrying the decision (the judges' votes
  unchanged); a sample that returns to its judges' verdict gets their record back;
* a benign twin (``<sample>~t``) can be kept or dropped like any sample; it has no route or
  sub-category of its own (it follows its source), so a move or resolve of a twin is skipped
  with a line naming the source to decide instead;
* ``finish.finish_run`` leaves dropped samples out of the splits and exports.

The log is read line by line as bytes: a line that is not UTF-8, not JSON or not a decision is
reported (file, line, reason) and skipped, and the rest applies.

Everything is a function of the stage files and the log, written in id order and only when it
changes, so the same decisions give the same bytes and applying twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from mis_data.core.config import ConfigError
from mis_data.core.decision_log import (
    DECISIONS,
    REVIEW_QUEUE,
    REVIEW_STAGE,
    append_decisions,
    read_decisions,
)
from mis_data.core.records import (
    ConceptRecord,
    InstructionRecord,
    JudgementRecord,
    RejectReason,
    RejectRecord,
    ReviewDecision,
    ReviewItem,
    ReviewRecord,
    Step,
    TwinRecord,
)
from mis_data.core.rundir import RunDir, complete_lines
from mis_data.core.taxonomy import Taxonomy
from mis_data.stages.base import record_decided_rejects
from mis_data.stages.panel import majority


def import_decisions(run: RunDir, source: Path) -> tuple[int, list[str]]:
    """Add the decisions of ``source`` (e.g. a file downloaded from the gallery) that the run's
    log does not hold yet; returns how many were added and the invalid lines."""
    target = run.path / DECISIONS
    if source.resolve() == target.resolve():
        return 0, read_decisions(target)[1]
    if not source.is_file():
        raise ConfigError(f"{source}: decisions file not found")
    known = {decision.model_dump_json() for decision in read_decisions(target)[0]}
    incoming, problems = read_decisions(source)
    new = []
    for decision in incoming:
        line = decision.model_dump_json()
        if line not in known:
            known.add(line)
            new.append(decision)
    note = append_decisions(target, new)
    return len(new), problems + ([note] if note else [])


def latest_per_sample(decisions: list[ReviewDecision], questions_of: dict[str, list[str]],
                      twins: Collection[str] = ()) -> tuple[dict[str, ReviewDecision], list[str]]:
    """The decision that wins for each sample id, and the ids that name nothing in the run.

    Decisions are taken in time order (ties: log order); a pair decision is the decision of each
    of its questions until a later one replaces it. ``twins`` are samples too (``<sample>~t``),
    decided one by one: a pair decision covers its questions, and a twin follows its source.
    """
    latest: dict[str, ReviewDecision] = {}
    unknown: list[str] = []
    known_samples = {sample for samples in questions_of.values() for sample in samples} | set(twins)
    ordered = sorted(enumerate(decisions), key=lambda pair: (pair[1].at, pair[0]))
    for _, decision in ordered:
        if decision.scope == "pair":
            targets = questions_of.get(decision.id, [])
        else:
            targets = [decision.id] if decision.id in known_samples else []
        if not targets:
            unknown.append(decision.id)
        for sample in targets:
            latest[sample] = decision
    return latest, sorted(set(unknown))


# -- applying --------------------------------------------------------------------------------

@dataclass
class ApplyReport:
    """What applying the log did, for the command's summary and the manifest."""

    decisions: int = 0
    samples: int = 0
    kept: int = 0
    dropped: int = 0
    moved: int = 0
    resolved: int = 0
    judgements_written: int = 0
    rejects_written: int = 0
    awaiting_label: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """The decision counts alone, as a dict (no id lists, no write counts)."""
        return {"decisions": self.decisions, "samples": self.samples, "kept": self.kept,
                "dropped": self.dropped, "moved": self.moved, "resolved": self.resolved}

    def lines(self) -> list[str]:
        """The command's summary, one line each: what was decided, what was written, and what needs
        attention (labels to make, unknown ids, skipped decisions)."""
        lines = [f"decisions: {self.decisions} in the log, deciding {self.samples} samples: "
                 f"{self.dropped} dropped, {self.moved} moved, {self.resolved} resolved, "
                 f"{self.kept} kept",
                 f"written: {self.judgements_written} judgement(s), {self.rejects_written} "
                 "reject(s)" + (" (nothing changed)" if not self.changed else "")]
        if self.awaiting_label:
            lines.append(f"{len(self.awaiting_label)} sample(s) now routed to train have no "
                         "label yet: run `mis-data build` with the run's config to label them")
        if self.unknown:
            lines.append("ids not found in the run (skipped): " + ", ".join(self.unknown[:10])
                         + (" ..." if len(self.unknown) > 10 else ""))
        lines += [f"skipped: {problem}" for problem in self.problems]
        return lines

    @property
    def changed(self) -> bool:
        """Whether applying wrote a judgement or a reject (``lines`` says "nothing changed" if not)."""
        return bool(self.judgements_written or self.rejects_written)


def judges_own(run: RunDir) -> dict[str, JudgementRecord]:
    """The first record per id of ``judgements.jsonl``: the judges' verdict, before any person."""
    first: dict[str, JudgementRecord] = {}
    for line in complete_lines(run.stage_file(Step.judgements.value)):
        record = JudgementRecord.model_validate_json(line)
        if record.decision is None:
            first.setdefault(record.id, record)
    return first


def reviewer_dropped(run: RunDir) -> set[str]:
    """Sample ids whose current reject says a reviewer dropped them (finish leaves them out)."""
    return {reject.id for reject in run.rejects()
            if reject.stage == REVIEW_STAGE and reject.reason == RejectReason.dropped_by_reviewer}


class Applier:
    """Works out, for one sample and its winning decision, the judgement it should have."""

    def __init__(self, run: RunDir, taxonomy: Taxonomy, report: ApplyReport) -> None:
        self.run = run
        self.taxonomy = taxonomy
        self.report = report
        self.instructions = run.records(Step.instructions.value, InstructionRecord)
        self.concepts = {c.id: c for c in run.read(Step.concepts.value, ConceptRecord)}
        self.current = run.records(Step.judgements.value, JudgementRecord)
        self.original = judges_own(run)
        self.queue = {item.id: item for item in run.read(REVIEW_QUEUE, ReviewItem)}
        self.twins = run.records(Step.twins.value, TwinRecord)

    def refused(self, sample: str, decision: ReviewDecision) -> str | None:
        """Why a decision cannot apply to this sample, if it cannot.

        A twin has no judges' route or sub-category of its own: it takes its source's side and
        sub-category (``splits.twin_samples``). So a twin can be kept or dropped; a move or a
        resolve would contradict its source and is skipped, naming the sample to decide instead.
        """
        twin = self.twins.get(sample)
        if twin is not None and decision.action in ("move", "resolve"):
            return (f"{sample}: a twin takes its source's route and sub-category; "
                    f"{decision.action} its source {twin.twin_of} instead")
        return None

    def reject_sub_category(self, sample: str) -> str | None:
        """The sub-category a reviewer's drop is filed under: the judges' (a twin's source's),
        else the concept's."""
        source = self.twins[sample].twin_of if sample in self.twins else sample
        judged = self.current.get(source)
        if judged is not None:
            return judged.sub_category
        instruction = self.instructions.get(source)
        return self.concepts[instruction.concept_id].sub_category if instruction else None

    def sub_category(self, name: str | None) -> str | None:
        """The taxonomy's name for a reviewer's sub-category, None when the decision gives none. Raises
        ``ValueError`` for a name the taxonomy does not know."""
        if not name:
            return None
        found = self.taxonomy.canonical(name)
        if found is None:
            raise ValueError(f"unknown sub-category {name!r}")
        return found

    def wanted(self, sample: str, decision: ReviewDecision) -> JudgementRecord | None:
        """The judgement the sample should end with (None: leave judgements as they are)."""
        if sample in self.twins:
            return None  # kept: a twin has no judgement of its own
        generated = self.concepts[self.instructions[sample].concept_id].sub_category
        judged = self.original.get(sample)
        if decision.action in ("keep", "move"):
            if judged is None:
                return None  # an open tie stays open until someone gives it a route
            sub = self.sub_category(decision.sub_category) or judged.sub_category
            return self.routed(judged, judged.route, sub, generated, decision)
        if decision.action == "resolve" and decision.route != "discard":
            votes = judged.votes if judged else (self.queue[sample].votes
                                                 if sample in self.queue else None)
            if votes is None:
                raise ValueError("no judge votes to resolve (the sample was never judged)")
            sub = (self.sub_category(decision.sub_category)
                   or (judged.sub_category if judged else None)
                   or majority([vote.sub_category for vote in votes]) or generated)
            base = judged or JudgementRecord(id=sample, route="hard", sub_category=sub,
                                             category=self.taxonomy.category_of(sub), votes=votes)
            assert decision.route is not None, "ReviewDecision requires a route to resolve"
            return self.routed(base, decision.route, sub, generated, decision)
        return None

    def routed(self, base: JudgementRecord, route: str, sub: str, generated: str,
               decision: ReviewDecision) -> JudgementRecord:
        """``base`` with a route and sub-category; the judges' own record when nothing moved."""
        if base.decision is None and route == base.route and sub == base.sub_category \
                and decision.action == "keep":
            return base.model_copy(update={"decision": decision})
        return base.model_copy(update={
            "route": route, "sub_category": sub, "category": self.taxonomy.category_of(sub),
            "moved_from": generated if sub != generated else None, "decision": decision})


def apply_decisions(run: RunDir, taxonomy: Taxonomy) -> ApplyReport:
    """Bring the run's records in line with ``decisions.jsonl`` (see the module docstring)."""
    report = ApplyReport()
    decisions, report.problems = read_decisions(run.path / DECISIONS)
    report.decisions = len(decisions)
    if not decisions and not run.stage_file(REVIEW_STAGE).exists():
        return report
    applier = Applier(run, taxonomy, report)
    questions_of: dict[str, list[str]] = {}
    for record in applier.instructions.values():
        questions_of.setdefault(record.concept_id, []).append(record.id)
    latest, report.unknown = latest_per_sample(decisions, questions_of, applier.twins)

    kept: list[ReviewRecord] = []
    drops: dict[str, ReviewDecision] = {}
    judgements: list[JudgementRecord] = []
    for sample in sorted(latest):
        decision = latest[sample]
        refused = applier.refused(sample, decision)
        if refused is not None:
            report.problems.append(refused)
            continue
        if decision.drops:
            drops[sample] = decision
            continue
        try:
            wanted = applier.wanted(sample, decision)
        except ValueError as error:
            report.problems.append(f"{sample}: {error}")
            continue
        kept.append(ReviewRecord(id=sample, decision=decision))
        report.kept += decision.action == "keep"
        report.moved += decision.action == "move"
        report.resolved += decision.action == "resolve"
        if wanted is not None and applier.current.get(sample) != wanted:
            judgements.append(wanted)
        if wanted is not None and wanted.route == "train" and sample not in run.output_ids(
                Step.labels.value):
            report.awaiting_label.append(sample)
    report.dropped = len(drops)
    report.resolved += sum(1 for d in drops.values() if d.action == "resolve")
    report.dropped -= sum(1 for d in drops.values() if d.action == "resolve")
    report.samples = len(kept) + len(drops)

    # Records first, so a sample kept again is covered before the rejects are compared.
    current_review = run.read(REVIEW_STAGE, ReviewRecord)
    if [r.model_dump_json() for r in current_review] != [r.model_dump_json() for r in kept]:
        run.write_records(REVIEW_STAGE, kept)
    if judgements:
        run.append(Step.judgements.value, judgements)
        report.judgements_written = len(judgements)
    rejects = [RejectRecord(stage=REVIEW_STAGE, id=sample, reason=RejectReason.dropped_by_reviewer,
                            detail=decision.summary()[:1000],
                            sub_category=applier.reject_sub_category(sample))
               for sample, decision in sorted(drops.items())]
    # a drop whose reason or reviewer changed is said again: the whole record must match
    report.rejects_written += record_decided_rejects(run, REVIEW_STAGE, rejects,
                                                     same=lambda reject: reject.model_dump_json())
    return report


def decisions_summary(run: RunDir) -> dict[str, int] | None:
    """Counts for the manifest, read from the applied records (None for an unreviewed run)."""
    if not (run.path / DECISIONS).exists() and not run.stage_file(REVIEW_STAGE).exists():
        return None
    actions: dict[str, int] = {}
    for record in run.read(REVIEW_STAGE, ReviewRecord):
        actions[record.decision.action] = actions.get(record.decision.action, 0) + 1
    return {"decisions": len(read_decisions(run.path / DECISIONS)[0]),
            "dropped": len(reviewer_dropped(run)),
            **{f"{action}": count for action, count in sorted(actions.items())}}
