"""Plain-text reports on a run folder, read from its files alone (no model, no config needed)."""

from __future__ import annotations

from pathlib import Path

from mis_data.core.rundir import RunDir, read_json_or_none
from mis_data.reports.counts import stage_column_width, stage_counts


def info_text(path: Path) -> str:
    """What ``mis-data info`` prints: stage counts, rejects, splits and usage, from the run folder alone; an
    unfinished build says so."""
    run = RunDir(path)
    config = run.config().config
    lines = [f"run folder: {path}",
             f"name: {config.name}   backend: {config.backend}"
             + ("  (offline: templates and rules, no language model)"
                if config.backend == "offline" else "") + f"   seed: {config.seed}"]
    lines.append("")
    counts = stage_counts(run)
    width = stage_column_width(counts)
    lines.append(f"{'stage':<{width}}{'records':>9}{'rejected':>10}")
    for stage, data in counts.items():
        lines.append(f"{stage:<{width}}{data['records']:>9}{data['rejected']:>10}")
    rejected = [(stage, reason, n) for stage, data in counts.items()
                for reason, n in data["rejects_by_reason"].items()]
    if rejected:
        lines.append("")
        lines.append("rejects by stage and reason:")
        lines.extend(f"  {stage:<{width}}{reason:<22}{n:>6}" for stage, reason, n in rejected)
    split_manifest = read_json_or_none(run.splits_dir / "manifest.json")
    lines.append("")
    if split_manifest:
        lines.append("splits: " + ", ".join(f"{k}={v}" for k, v in split_manifest["counts"].items()))
    else:
        lines.append("splits: not written yet (the build has not finished)")
    manifest = read_json_or_none(run.manifest_path)
    if manifest:
        total = manifest.get("usage", {}).get("total", {})
        lines.append(f"usage: {int(total.get('requests', 0))} requests, "
                     f"{int(total.get('input_tokens', 0))} input / "
                     f"{int(total.get('output_tokens', 0))} output tokens, "
                     f"${total.get('cost_usd', 0.0):.4f}")
        lines.append("exports: " + ", ".join(sorted({f.split('/')[0] for f in
                                                     manifest.get("exported_files", {})})))
    else:
        lines.append("build not finished: run the same `mis-data build` command to continue")
    return "\n".join(lines)
