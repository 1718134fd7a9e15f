"""One joined view of a run's samples: what every stage reads its inputs through, and the splits.

A sample's records live in one file per stage, keyed by id. This is the one place that joins
them: a sample id finds its question, its judgement and its label by the same id, and its
concept and images by the id they hang from (``rundir.parent_id``: sample ``<pair>-2`` belongs
to pair ``<pair>``). The records come from ``RunDir.records``, which reads each file once per
build and keeps it current, so a view is cheap to make and never stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from mis_data.core.ids import parent_id
from mis_data.core.records import (
    RETRYABLE_REASONS,
    ConceptRecord,
    GeneralRecord,
    ImageRecord,
    InstructionRecord,
    JudgementRecord,
    LabelRecord,
    PairRecord,
    RejectRecord,
    Step,
    TwinRecord,
)
from mis_data.core.rundir import RunDir


@dataclass(frozen=True)
class Joined:
    """Everything a run knows about one sample so far (later stages' records may be None)."""

    id: str
    concept: ConceptRecord
    pair: PairRecord | None = None
    instruction: InstructionRecord | None = None
    judgement: JudgementRecord | None = None
    label: LabelRecord | None = None

    @property
    def sub_category(self) -> str:
        """The judges' sub-category once judged (they may move a sample), else the concept's."""
        return self.judgement.sub_category if self.judgement else self.concept.sub_category


class RunView:
    """Typed, joined read access to the records of one run folder."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    # -- one stage's records ----------------------------------------------------------------
    @property
    def concepts(self) -> dict[str, ConceptRecord]:
        """Concepts by pair id: the concept of sample ``<pair>-<k>`` is under ``<pair>``."""
        return self.run.records(Step.concepts.value, ConceptRecord)

    @property
    def twins(self) -> dict[str, TwinRecord]:
        """Benign twins by id (``<sample>~t``); ``twin_of`` names the sample."""
        return self.run.records(Step.twins.value, TwinRecord)

    @property
    def images(self) -> dict[str, ImageRecord]:
        """One record per image slot, by id (``<pair>.1``); ``sample_id`` and ``slot`` say whose."""
        return self.run.records(Step.images.value, ImageRecord)

    @property
    def pairs(self) -> dict[str, PairRecord]:
        """Concepts joined with their images, by pair id; a concept whose images failed has none."""
        return self.run.records(Step.pairs.value, PairRecord)

    @property
    def instructions(self) -> dict[str, InstructionRecord]:
        """Questions by sample id (``<pair>-<k>``): each question is a sample of its own."""
        return self.run.records(Step.instructions.value, InstructionRecord)

    @property
    def judgements(self) -> dict[str, JudgementRecord]:
        """The judges' verdicts by sample id."""
        return self.run.records(Step.judgements.value, JudgementRecord)

    @property
    def labels(self) -> dict[str, LabelRecord]:
        """Safety answers by sample id."""
        return self.run.records(Step.labels.value, LabelRecord)

    @property
    def real(self) -> dict[str, PairRecord]:
        """MIS-real pairs (real photos in place of the generated ones), kept apart from ``pairs``."""
        return self.run.records(Step.real.value, PairRecord)

    @property
    def general(self) -> dict[str, GeneralRecord]:
        """General (not safety) samples from ``general:``, by id, for the train split only."""
        return self.run.records(Step.general.value, GeneralRecord)

    def rejected(self, step: Step, *, final_only: bool = False) -> dict[str, RejectRecord]:
        """Current rejects of one stage by id (``final_only``: not the ones a rerun retries)."""
        return {reject.id: reject for reject in self.run.rejects()
                if reject.stage == step.value
                and not (final_only and reject.reason in RETRYABLE_REASONS)}

    # -- joined samples ---------------------------------------------------------------------
    def join(self, sample_id: str) -> Joined:
        """The sample ``sample_id`` with every record the run has for it."""
        pair_id = parent_id(sample_id)
        return Joined(id=sample_id, concept=self.concepts[pair_id],
                      pair=self.pairs.get(pair_id),
                      instruction=self.instructions.get(sample_id),
                      judgement=self.judgements.get(sample_id),
                      label=self.labels.get(sample_id))

    def samples(self, step: Step) -> list[Joined]:
        """Every sample with a record of ``step`` (instructions, judgements or labels), in
        that file's order."""
        # Each value is a dict of another record type, which mypy joins to ``object``; only the
        # ids are read here.
        source = cast(Mapping[str, object], {
            Step.instructions: self.instructions, Step.judgements: self.judgements,
            Step.labels: self.labels}[step])
        return [self.join(sample_id) for sample_id in source]
