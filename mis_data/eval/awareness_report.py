"""The printed tables and the plot of an awareness eval (``awareness.py``), alone and compared.

The columns name the paper's two failures: ``unsafe→safe`` (a Yes to an unsafe item) and
``benign→unsafe`` (a No to a benign one), each in % of the answered items of its row, beside
``other`` (neither Yes nor No first), the counts they come from and the unanswered items. A
row is one kind of item, so it has one failure; the other prints as a dash.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from mis_data.eval.awareness import ANSWERS
from mis_data.eval.report import figure, pct, png_bytes

RATES = ("unsafe_called_safe", "benign_called_unsafe", "other")
HEADS = {"unsafe_called_safe": "unsafe→safe↓", "benign_called_unsafe": "benign→unsafe↓",
         "other": "other↓"}
COLORS = {"Yes": "#2ca02c", "No": "#d62728", "other": "#7f7f7f"}


def header_line(scores: dict[str, Any]) -> str:
    """The eval, its model and backend, flagged loudly when offline."""
    line = f"Awareness eval {scores['name']} (MMSafeAware: is the request safe? first word " \
           f"Yes/No): model {scores['model']}, backend {scores['backend']}"
    if scores["backend"] == "offline":
        line += " (OFFLINE: rule-based model, not a real evaluation)"
    return line


def where(row: dict[str, Any], many_sets: bool) -> str:
    """A row's subset, prefixed by its test set when the eval has several."""
    return f"{row['test_set']}/{row['subset']}" if many_sets else row["subset"]


def rows_text(rows: list[dict[str, Any]], label: str, many_sets: bool,
              name: Any = lambda row: "") -> list[str]:
    """Table lines: the row's place, expected answer, counts, the failure rates, unanswered."""
    lines = [f"{label:<44}{'exp':>4}{'n':>6}{'answered':>9}{'Yes':>6}{'No':>6}{'other':>6}  "
             + "  ".join(f"{HEADS[rate]:>14}" for rate in RATES) + "  not answered"]
    for row in rows:
        title = (where(row, many_sets) + " " + name(row)).strip()
        counts = row["counts"]
        lines.append(f"{title[:43]:<44}{row['expected']:>4}{row['n']:>6}{row['answered']:>9}"
                     + "".join(f"{counts[answer]:>6}" for answer in ANSWERS) + "  "
                     + "  ".join(f"{pct(row[rate]):>14}" for rate in RATES)
                     + f"  {row['answer_failed']}")
    return lines


def totals_lines(totals: dict[str, Any]) -> list[str]:
    """The paper's two headline numbers, with the counts they are made of."""
    unsafe, benign = totals["unsafe"], totals["benign"]
    return [
        f"unsafe called safe: {unsafe['counts']['Yes']} of {unsafe['answered']} answered unsafe "
        f"items = {pct(unsafe['unsafe_called_safe']).strip()} % (other: "
        f"{pct(unsafe['other']).strip()} %)",
        f"benign called unsafe: {benign['counts']['No']} of {benign['answered']} answered benign "
        f"items = {pct(benign['benign_called_unsafe']).strip()} % (other: "
        f"{pct(benign['other']).strip()} %)",
        f"{totals['items']} items, {totals['answered']} answered, {totals['answer_failed']} not "
        "answered",
    ]


def awareness_table(scores: dict[str, Any]) -> str:
    """The text ``mis-data eval --protocol awareness`` prints: per subset, per sub-category,
    then the totals."""
    many = len(scores["test_sets"]) > 1
    out = [header_line(scores), ""]
    out += rows_text(scores["subsets"], "subset", many)
    out += [""] + rows_text(scores["sub_categories"], "subset / sub-category", many,
                            lambda row: row["sub_category"])
    return "\n".join([*out, "", *totals_lines(scores["totals"])])


def write_awareness_plot(scores: dict[str, Any], path: Path) -> None:
    """Stacked bars per subset: the shares of Yes, No and other among the answered items."""
    import matplotlib.pyplot as plt

    from mis_data.core.rundir import write_bytes_atomic

    rows = scores["subsets"]
    many = len(scores["test_sets"]) > 1
    fig = figure(max(6.0, 1.1 * len(rows) + 3), 4.5)
    fig.suptitle("\n".join(textwrap.wrap(header_line(scores), 90)), fontsize=8)
    axis = fig.add_subplot(1, 1, 1)
    labels = [f"{where(row, many)}\nexpect {row['expected']}\nn={row['n']}" for row in rows]
    bottom = [0.0] * len(rows)
    for answer in ANSWERS:
        values = [100 * row["counts"][answer] / row["answered"] if row["answered"] else 0.0
                  for row in rows]
        axis.bar(labels, values, bottom=bottom, label=answer, color=COLORS[answer])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_ylabel("% of answered items")
    axis.set_ylim(0, 100)
    axis.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    write_bytes_atomic(path, png_bytes(fig))
    plt.close(fig)


# -- several awareness evals side by side (``mis-data eval compare``) ------------------------

def subset_keys(all_scores: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Subsets present in every awareness eval: by subset name when each eval has one test set
    per subset, else by (test set, subset)."""
    by_name = all(len({r["subset"] for r in s["subsets"]}) == len(s["subsets"])
                  for s in all_scores)
    keyed = [[(r["subset"],) if by_name else (r["test_set"], r["subset"]) for r in s["subsets"]]
             for s in all_scores]
    return [key for key in keyed[0] if all(key in other for other in keyed[1:])]


def subset_row(scores: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    """The subset row of one eval that ``key`` (from ``subset_keys``) names."""
    return next(r for r in scores["subsets"]
                if (r["subset"],) == key or (r["test_set"], r["subset"]) == key)


def exact(row: dict[str, Any], rate: str) -> float | None:
    """A rate from its counts (a difference is not one of rounded numbers); None where the row
    has no such rate or nothing was answered."""
    if row[rate] is None:
        return None
    count = {"unsafe_called_safe": "Yes", "benign_called_unsafe": "No", "other": "other"}[rate]
    return 100 * row["counts"][count] / row["answered"]


def compare_lines(names: list[str], all_scores: list[dict[str, Any]]) -> list[str]:
    """Per subset, each awareness eval's rates, then each later one minus the first."""
    out = [f"{'subset':<16}{'eval':<28}{'n':>6}{'answered':>9}  "
           + "  ".join(f"{HEADS[rate]:>14}" for rate in RATES) + "  not answered"]
    for key in subset_keys(all_scores):
        rows = [subset_row(s, key) for s in all_scores]
        for name, row in zip(names, rows, strict=True):
            out.append(f"{'/'.join(key):<16}{name[:27]:<28}{row['n']:>6}{row['answered']:>9}  "
                       + "  ".join(f"{pct(row[rate]):>14}" for rate in RATES)
                       + f"  {row['answer_failed']}")
        for name, row in zip(names[1:], rows[1:], strict=True):
            deltas = []
            for rate in RATES:
                now, first = exact(row, rate), exact(rows[0], rate)
                deltas.append(f"{'-':>14}" if now is None or first is None
                              else f"{now - first:+14.2f}")
            out.append(f"{'/'.join(key):<16}{('Δ ' + name + ' − ' + names[0])[:27]:<28}"
                       f"{'':>15}  " + "  ".join(deltas))
        out.append("")
    return out


def compare_panel(axis: Any, names: list[str], all_scores: list[dict[str, Any]]) -> None:
    """One plot panel: per subset, each eval's failure rate (unsafe→safe or benign→unsafe)."""
    keys = subset_keys(all_scores)
    width = 0.8 / max(1, len(names))
    for offset, (label, scores) in enumerate(zip(names, all_scores, strict=True)):
        values = []
        for key in keys:
            row = subset_row(scores, key)
            rate = row["unsafe_called_safe"] if row["expected"] == "No" \
                else row["benign_called_unsafe"]
            values.append(rate or 0.0)
        axis.bar([k + offset * width for k in range(len(keys))], values, width, label=label)
    axis.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))],
                    ["/".join(key) for key in keys], fontsize=8)
    axis.set_ylim(0, 100)
    axis.set_title("awareness: wrong answers ↓", fontsize=9)
    axis.legend(fontsize=7)
