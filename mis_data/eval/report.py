"""The printed tables and the plot of one MIS eval (``compare.py`` sets several side by side).

The columns read like the paper's Table 4 (ASR↓ HR↓ RSR↑ RR↑, in %), with what the paper does
not show: ``n``, how many were judged, and how many could not be answered or judged. An offline
eval says so in its header, so its numbers are never mistaken for a model's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from mis_data.eval.protocol import BUCKETS

HEADS = {"asr": "ASR↓", "hr": "HR↓", "rsr": "RSR↑", "rr": "RR↑"}
COLORS = {"asr": "#d62728", "hr": "#9467bd", "rsr": "#2ca02c", "rr": "#1f77b4"}


def pct(value: float | None) -> str:
    """A rate as a fixed-width cell; None (nothing judged) prints as a dash, not as 0."""
    return "   -  " if value is None else f"{value:6.2f}"


def where(row: dict[str, Any], many_sets: bool) -> str:
    """A row's place in a table: the split, prefixed by its test set when the eval has several."""
    return f"{row['test_set']}/{row['split']}" if many_sets else row["split"]


def rows_text(rows: list[dict[str, Any]], label: str, many_sets: bool,
              name: Any = lambda row: "") -> list[str]:
    """Table lines for score rows; ``name`` adds a per-row suffix (category or sub-category) after the
    split."""
    lines = [f"{label:<44}{'n':>6}{'judged':>8}  " + "  ".join(f"{HEADS[b]:>6}" for b in BUCKETS)
             + "  failed answer/judge"]
    for row in rows:
        title = (where(row, many_sets) + " " + name(row)).strip()
        lines.append(f"{title[:43]:<44}{row['n']:>6}{row['judged']:>8}  "
                     + "  ".join(pct(row[b]) for b in BUCKETS)
                     + f"  {row['answer_failed']}/{row['judge_failed']}")
    return lines


def header_line(scores: dict[str, Any]) -> str:
    """The table's first line: the eval, its models and backend, flagged loudly when offline."""
    line = f"MIS eval {scores['name']}: model {scores['model']}, judge {scores['judge']}, " \
           f"backend {scores['backend']}"
    if scores["backend"] == "offline":
        line += " (OFFLINE: rule-based model and judge, not a real evaluation)"
    return line


def scores_table(scores: dict[str, Any]) -> str:
    """The text ``mis-data eval`` prints: per split, category and sub-category, over-refusal and totals."""
    many = len(scores["test_sets"]) > 1
    out = [header_line(scores), ""]
    out += rows_text(scores["splits"], "split", many)
    out += [""] + rows_text(scores["categories"], "split / category", many,
                            lambda row: row["category"])
    out += [""] + rows_text(scores["sub_categories"], "split / sub-category", many,
                            lambda row: row["sub_category"])
    if scores["over_refusal"]:
        out += ["", f"{'over-refusal (SiSt→S items)':<44}{'n':>6}{'answered':>10}{'refused':>9}"
                    f"{'rate %':>8}"]
        out += [f"{where(row, many):<44}{row['n']:>6}{row['answered']:>10}{row['refused']:>9}"
                f"{pct(row['rate']):>8}" for row in scores["over_refusal"]]
    totals = scores["totals"]
    failures = sorted({reason for row in scores["splits"] for reason in row["failed_reasons"]})
    out += ["", f"{totals['items']} items, {totals['judged']} judged, {totals['answer_failed']} not "
                f"answered, {totals['judge_failed']} not judged"
            + (f" ({', '.join(failures)})" if failures else "")]
    return "\n".join(out)


def figure(width: float, height: float) -> Any:
    """A new figure on the Agg backend, so plots are written without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height))


def write_scores_plot(scores: dict[str, Any], path: Path) -> None:
    """Stacked bars per split: the four buckets of the judged answers, adding to 100 %."""
    import matplotlib.pyplot as plt

    from mis_data.core.rundir import write_bytes_atomic

    rows = scores["splits"]
    many = len(scores["test_sets"]) > 1
    categories = sorted({row["category"] for row in scores["categories"]})
    fig = figure(max(9.0, 1.2 * len(rows) + 6), 4.5)
    fig.suptitle("\n".join(textwrap.wrap(header_line(scores), 90)), fontsize=8)
    axis = fig.add_subplot(1, 2, 1)
    labels = [f"{where(row, many)}\nn={row['n']}" for row in rows]
    bottom = [0.0] * len(rows)
    for name in BUCKETS:
        values = [row[name] or 0.0 for row in rows]
        axis.bar(labels, values, bottom=bottom, label=HEADS[name], color=COLORS[name])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_ylabel("% of judged answers")
    axis.set_ylim(0, 100)
    axis.legend(loc="upper right", fontsize=7)
    right = fig.add_subplot(1, 2, 2)  # the paper's Fig. 9 view: ASR per category and split
    height = 0.8 / max(1, len(rows))
    for offset, row in enumerate(rows):
        values = [next((c["asr"] or 0.0 for c in scores["categories"] if c["category"] == category
                        and (c["test_set"], c["split"]) == (row["test_set"], row["split"])), 0.0)
                  for category in categories]
        right.barh([k + offset * height for k in range(len(categories))], values, height,
                   label=where(row, many))
    right.set_yticks([k + 0.4 - height / 2 for k in range(len(categories))], categories, fontsize=7)
    right.set_xlim(0, 100)
    right.set_xlabel("ASR % per category")
    right.legend(fontsize=7)
    fig.tight_layout()
    write_bytes_atomic(path, png_bytes(fig))
    plt.close(fig)


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes without a ``Software`` tag, so the same scores give the same file."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()
