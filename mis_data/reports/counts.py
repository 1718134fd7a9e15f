"""Records and rejects per stage, read from a run folder: the table that ``info``, ``stats`` and
the manifest share."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from mis_data.core.records import STEP_NAMES, Step
from mis_data.core.rundir import RunDir, complete_lines


def stage_counts(run: RunDir) -> dict[str, Any]:
    """Records and current rejects (by reason) per stage."""
    rejects: dict[str, Counter[str]] = defaultdict(Counter)
    for reject in run.rejects():
        rejects[reject.stage][reject.reason.value] += 1
    counts: dict[str, dict[str, Any]] = {}
    for stage in (*STEP_NAMES, *sorted(set(rejects) - set(STEP_NAMES))):
        if stage == Step.dedup:  # a filter with no file of its own: what passed it
            records = counts[Step.instructions.value]["records"] - sum(rejects[stage].values())
        elif stage in STEP_NAMES or run.stage_file(stage).is_file():  # a stage, or one after a step
            records = sum(1 for _ in complete_lines(run.stage_file(stage)))
        else:  # a step after the build (decontamination): it only rejects
            records = 0
        counts[stage] = {"records": records, "rejected": sum(rejects[stage].values()),
                         "rejects_by_reason": dict(sorted(rejects[stage].items()))}
    return counts


def stage_column_width(stages: Iterable[str]) -> int:
    """Width of a text table's stage column: 14, wider for a long name ("decontamination")."""
    return max(14, *(len(stage) + 2 for stage in stages))
