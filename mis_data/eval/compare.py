"""``mis-data eval compare``: several evals side by side, MIS's and awareness evals alike.

Evals of the same protocol are compared with each other (per split or subset, each later eval
minus the first of its protocol); evals of MIS's protocol and of the awareness protocol can be
named in one command, and each gets its own table, one after the other, and its own panels in
the plot. A compare of MIS evals alone prints and plots what it always did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mis_data.core.rundir import read_json_or_none
from mis_data.eval import awareness_report
from mis_data.eval.protocol import BUCKETS
from mis_data.eval.report import HEADS, figure, pct, png_bytes


def load_scores(folder: Path) -> dict[str, Any]:
    """An eval folder's ``scores.json``; a folder without one is a ``ConfigError``."""
    from mis_data.core.config import ConfigError

    scores = read_json_or_none(Path(folder) / "scores.json")
    if scores is None:
        raise ConfigError(f"{folder}: no scores.json (run `mis-data eval` first)")
    return scores


def split_keys(all_scores: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Splits present in every eval: by split name when each eval has one test set per split,
    else by (test set, split)."""
    by_name = all(len({r["split"] for r in s["splits"]}) == len(s["splits"]) for s in all_scores)
    keyed = [[(r["split"],) if by_name else (r["test_set"], r["split"]) for r in s["splits"]]
             for s in all_scores]
    return [key for key in keyed[0] if all(key in other for other in keyed[1:])]


def row_for(scores: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    """The split row of one eval that ``key`` (from ``split_keys``) names."""
    return next(r for r in scores["splits"]
                if (r["split"],) == key or (r["test_set"], r["split"]) == key)


def exact(row: dict[str, Any], bucket: str) -> float:
    """A rate from its counts, so a difference is not a difference of rounded numbers."""
    return 100 * row["counts"][bucket] / row["judged"]


def protocol_of(scores: dict[str, Any]) -> str:
    """The protocol an eval scored by (evals made before awareness have no key: MIS)."""
    return str(scores.get("protocol", "mis"))


def title(name: str, scores: dict[str, Any]) -> str:
    """An eval as the first line names it: its model, its judge (MIS) or protocol, backend."""
    how = f"judge {scores['judge']}" if protocol_of(scores) == "mis" else "awareness"
    return f"{name} ({scores['model']}, {how}, {scores['backend']})"


def mis_lines(names: list[str], all_scores: list[dict[str, Any]]) -> list[str]:
    """Per split, each MIS eval's rates, then each later eval minus the first."""
    out = [f"{'split':<12}{'eval':<28}{'n':>6}{'judged':>8}  "
           + "  ".join(f"{HEADS[b]:>7}" for b in BUCKETS) + "  failed a/j"]
    for key in split_keys(all_scores):
        rows = [row_for(s, key) for s in all_scores]
        for name, row in zip(names, rows, strict=True):
            out.append(f"{'/'.join(key):<12}{name[:27]:<28}{row['n']:>6}{row['judged']:>8}  "
                       + "  ".join(f"{pct(row[b]):>7}" for b in BUCKETS)
                       + f"  {row['answer_failed']}/{row['judge_failed']}")
        for name, row in zip(names[1:], rows[1:], strict=True):
            deltas = ["      -" if row[b] is None or rows[0][b] is None
                      else f"{exact(row, b) - exact(rows[0], b):+7.2f}" for b in BUCKETS]
            out.append(f"{'/'.join(key):<12}{('Δ ' + name + ' − ' + names[0])[:27]:<28}"
                       f"{'':>14}  " + "  ".join(deltas))
        out.append("")
    if len({(s["judge"], s["backend"]) for s in all_scores}) > 1:
        out.append("note: the evals used different judges or backends; differences mix both")
    return out


def by_protocol(names: list[str], all_scores: list[dict[str, Any]]
                ) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """The evals of each protocol present, in the order given (MIS first)."""
    groups: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    for protocol in ("mis", "awareness"):
        chosen = [(n, s) for n, s in zip(names, all_scores, strict=True)
                  if protocol_of(s) == protocol]
        if chosen:
            groups[protocol] = ([n for n, _ in chosen], [s for _, s in chosen])
    return groups


def compare_table(folders: list[Path]) -> tuple[str, list[dict[str, Any]]]:
    """One table per protocol: per split (MIS) or subset (awareness), each eval's rates, then
    each later eval of that protocol minus its first."""
    all_scores = [load_scores(folder) for folder in folders]
    names = [Path(folder).name for folder in folders]
    out = [" vs ".join(title(name, s) for name, s in zip(names, all_scores, strict=True)), ""]
    groups = by_protocol(names, all_scores)
    if "mis" in groups:
        if len(groups) > 1:
            out += ["MIS protocol (judged answers, ASR / HR / RSR / RR in %)", ""]
        out += mis_lines(*groups["mis"])
    if "awareness" in groups:
        if len(groups) > 1:
            out += ["", "awareness protocol (MMSafeAware: first word Yes/No, % of answered)", ""]
        out += awareness_report.compare_lines(*groups["awareness"])
    return "\n".join(out).rstrip(), all_scores


def write_compare_plot(folders: list[Path], all_scores: list[dict[str, Any]], path: Path) -> None:
    """One panel per MIS rate (per split, one bar per MIS eval), and one panel for the
    awareness evals' wrong answers per subset."""
    import matplotlib.pyplot as plt

    from mis_data.core.rundir import write_bytes_atomic

    groups = by_protocol([Path(folder).name for folder in folders], all_scores)
    panels = (len(BUCKETS) if "mis" in groups else 0) + ("awareness" in groups)
    widest = max(len(split_keys(s) if p == "mis" else awareness_report.subset_keys(s))
                 * len(n) ** 0.5 for p, (n, s) in groups.items())
    fig = figure(max(8.0, 2.2 * widest + 4), 4.0)
    if "mis" in groups:
        names, scores_list = groups["mis"]
        keys = split_keys(scores_list)
        width = 0.8 / len(names)
        for index, name in enumerate(BUCKETS, start=1):
            axis = fig.add_subplot(1, panels, index)
            for offset, (label, scores) in enumerate(zip(names, scores_list, strict=True)):
                values = [row_for(scores, key)[name] or 0.0 for key in keys]
                axis.bar([k + offset * width for k in range(len(keys))], values, width,
                         label=label)
            axis.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))],
                            ["/".join(key) for key in keys], fontsize=8)
            axis.set_ylim(0, 100)
            axis.set_title(HEADS[name])
        fig.axes[0].set_ylabel("% of judged answers")
        fig.axes[len(BUCKETS) - 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if "awareness" in groups:
        awareness_report.compare_panel(fig.add_subplot(1, panels, panels), *groups["awareness"])
    fig.tight_layout()
    write_bytes_atomic(path, png_bytes(fig))
    plt.close(fig)
