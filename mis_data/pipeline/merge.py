"""``mis-data merge OUT SHARD...``: the run folders of a sharded build joined into one, with the
splits and every export made once, as a single build of the same config would make them.

Each shard holds the whole concept list and the records of its own pairs (``core/shards.py``).
The merge checks that the shards are one build (the same config and prompt hashes, every index
of ``i/N`` once, each finished), then writes the new run folder step by step:

1. the config, the concept list (identical in every shard) and the images;
2. the records of the steps before dedup (questions, images, pairs) and their rejects, joined;
3. dedup over all pairs: a shard only flags its near-duplicates (which of two goes depends on
   every pair, and one in another shard is invisible to it), so its samples are all judged.
   A sample dedup drops now would never have been judged in a single build, so its
   judgements, labels, twins and their rejects are left out of the next step;
4. the records of the later per-item steps and their rejects, joined;
5. the other whole-file steps (MIS-real picks, the general mix), decided over the union;
6. splits, exports and the manifest (``runner.finish``).

No model is asked anything: every per-item answer is in the shards, and the whole-file steps
decided here send no requests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mis_data.core.config import ConfigError
from mis_data.core.prompts import PromptLibrary
from mis_data.core.records import RejectRecord, Step
from mis_data.core.rundir import (
    RunDir,
    complete_lines,
    lock_run,
    read_json_or_none,
    write_json_atomic,
    write_text_atomic,
)
from mis_data.core.shards import SHARD_FILE, Shard, read_shard
from mis_data.core.taxonomy import load_kinds, load_taxonomy
from mis_data.images.store import ImageStore
from mis_data.pipeline.runner import finish
from mis_data.stages import STAGES
from mis_data.stages.base import BuildContext, StageStats, WholeStage, run_whole

MERGED_FROM = "merged_from.txt"  # the shard folders a merged run folder was made from
BEFORE_DEDUP = {Step.instructions.value, Step.images.value, Step.pairs.value}
# Whole-file steps decided again over the union (the concept list is copied, not decided).
DECIDED_AGAIN = [name for name, stage in STAGES.items()
                 if issubclass(stage, WholeStage) and name != Step.concepts.value]
SAMPLE = re.compile(r"^[0-9a-f]{16}(?:-\d+)?")


@dataclass
class MergeResult:
    """What ``mis-data merge`` prints: the new run folder, the shards, the whole-file steps'
    stats, the manifest and the samples dedup dropped across shards."""

    run: RunDir
    shards: list[Path]
    stats: list[StageStats] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    dropped_across: int = 0  # samples the shards judged that dedup over all pairs dropped


class NoModels:
    """The model client of a merge: nothing is asked, and a request would be a bug."""

    name = "merge"
    batching = False

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"mis-data merge asks no model (it called client.{name})")


def check_shards(paths: list[Path]) -> list[RunDir]:
    """The shard folders in index order, once each checked to be one finished sharded build."""
    if not paths:
        raise ConfigError("mis-data merge needs the shard run folders to join")
    found: dict[int, tuple[Shard, RunDir]] = {}
    identity: str | None = None
    for path in paths:
        run = RunDir(path)
        shard = read_shard(path) if run.exists() else None
        if shard is None:
            raise ConfigError(f"{path}: not a shard's run folder (no {SHARD_FILE}; build it with "
                              "--shard i/N)")
        if not run.manifest_path.exists():
            raise ConfigError(f"{path}: shard {shard} has not finished; run its build command "
                              "again, then merge")
        sha = run.config().config_sha256
        if identity is not None and sha != identity:
            raise ConfigError(f"{path}: shard {shard} was built from another config or other "
                              "prompts than the first shard; shards must share both")
        identity = sha
        if shard.index in found:
            raise ConfigError(f"{path}: shard {shard} is given twice (also {found[shard.index][1].path})")
        found[shard.index] = (shard, run)
    counts = {shard.count for shard, _ in found.values()}
    count = counts.pop()
    missing = sorted(set(range(count)) - set(found))
    if counts or missing:
        raise ConfigError("the shards do not make one build: " + (
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing" if missing and not counts
            else "they name different shard counts"))
    return [found[index][1] for index in range(count)]


def lines_of(runs: Iterable[RunDir], name: str) -> list[str]:
    """Every complete line of one file of every shard, shard by shard."""
    return [line for run in runs for line in complete_lines(run.path / name)]


def sample_of(record_id: str) -> str:
    """The sample (``<pair>-<k>``) or pair an id belongs to: ``<sample>~t.1`` gives ``<sample>``."""
    found = SAMPLE.match(record_id)
    return found.group(0) if found else record_id


def line_id(line: str) -> str:
    """The ``id`` of one JSONL record without parsing the rest (every record starts with it)."""
    start = line.find('"id":')
    if start < 0:
        return ""
    value = line[start + 5:].lstrip()
    return value[1:value.index('"', 1)] if value.startswith('"') else ""


def write_lines(path: Path, lines: list[str]) -> None:
    """A JSONL file of the given complete lines, each its own group."""
    write_text_atomic(path, "".join(line if line.endswith("\n") else line + "\n" for line in lines))


def copy_images(runs: list[RunDir], out: RunDir) -> None:
    """Every shard's stored images into the merged folder (hard links where the disk allows)."""
    for run in runs:
        for source in sorted(run.images_dir.rglob("*.png")):
            target = out.images_dir / source.relative_to(run.images_dir)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def summed(values: list[Any]) -> Any:
    """Usage figures of the shards added up, leaf by leaf (lists joined)."""
    first = values[0]
    if isinstance(first, dict):
        keys = sorted({key for value in values for key in value})
        return {key: summed([value[key] for value in values if key in value]) for key in keys}
    if isinstance(first, list):
        return [item for value in values for item in value]
    if isinstance(first, int | float) and not isinstance(first, bool):
        return sum(values)
    return first


def join_stage_files(runs: list[RunDir], out: RunDir, names: set[str],
                     dropped: set[str]) -> None:
    """Join the named record files of the shards, without the samples in ``dropped``."""
    for name in sorted(names):
        lines = [line for line in lines_of(runs, f"{name}.jsonl")
                 if sample_of(line_id(line)) not in dropped]
        write_lines(out.stage_file(name), lines)


def reject_lines(runs: list[RunDir], stages: set[str], dropped: set[str]) -> list[str]:
    """The shards' reject lines of ``stages``, without those of samples in ``dropped``."""
    kept = []
    for line in lines_of(runs, "rejects.jsonl"):
        reject = RejectRecord.model_validate_json(line)
        if reject.stage in stages and sample_of(reject.id) not in dropped:
            kept.append(line)
    return kept


def record_files(run: RunDir) -> set[str]:
    """The record files of a shard (stage outputs and side files such as the review queue)."""
    return {path.stem for path in run.path.glob("*.jsonl") if path.stem != "rejects"}


def read_usage(run: RunDir) -> dict[str, Any]:
    """A shard's ``usage.json`` (its sessions; empty when it has none)."""
    return read_json_or_none(run.path / "usage.json") or {"sessions": []}


async def merge_runs(out_path: Path, shard_paths: list[Path],
                     show_progress: bool = False) -> MergeResult:
    """Join the shards into ``out_path`` (see the module docstring)."""
    runs = check_shards(shard_paths)
    first = runs[0]
    run_config = first.config()
    config = run_config.config
    out = RunDir(out_path)
    if out.path.exists() and any(out.path.iterdir()) and not (out.path / MERGED_FROM).exists():
        raise ConfigError(f"{out.path}: not empty and not an earlier merge; give a new folder")
    lock = lock_run(out.path, "merge", new=True)
    try:
        for child in list(out.path.iterdir()):  # an earlier merge is made again from scratch
            if child.name.startswith("."):  # the lock, held now
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        out = RunDir(out.path)
        out.write_config(run_config)
        write_text_atomic(out.path / MERGED_FROM,
                          "".join(f"{run.path.resolve()}\n" for run in runs))
        copy_images(runs, out)
        write_lines(out.stage_file(Step.concepts.value),
                    list(complete_lines(first.stage_file(Step.concepts.value))))
        write_lines(out.stage_file("rejects"),
                    reject_lines([first], {Step.concepts.value}, set())
                    + reject_lines(runs, BEFORE_DEDUP, set()))
        join_stage_files(runs, out, BEFORE_DEDUP & set().union(*map(record_files, runs)), set())
        out = RunDir(out.path)
        taxonomy = load_taxonomy(config.taxonomy)
        ctx = BuildContext(config=config, run=out, taxonomy=taxonomy,
                           prompts=PromptLibrary(config.prompts_dir),
                           client=NoModels(),
                           store=ImageStore(out.images_dir, config.images.max_side,
                                            config.images.max_pixels),
                           show_progress=show_progress,
                           kinds=load_kinds(config.kinds) if config.kinds else {})
        result = MergeResult(run=out, shards=[run.path for run in runs])
        result.stats.append(await run_whole(STAGES[Step.dedup.value](ctx)))  # type: ignore[arg-type]
        dropped = {sample_of(reject.id) for reject in out.rejects()
                   if reject.stage == Step.dedup.value}
        result.dropped_across = len(dropped)
        later = {name for name in set().union(*map(record_files, runs))
                 if name not in BEFORE_DEDUP and name != Step.concepts.value
                 and name not in DECIDED_AGAIN}
        join_stage_files(runs, out, later, dropped)
        later_stages = set(STAGES) - BEFORE_DEDUP - {Step.concepts.value, *DECIDED_AGAIN}
        write_lines(out.stage_file("rejects"), list(complete_lines(out.stage_file("rejects")))
                    + reject_lines(runs, later_stages, dropped))  # after dedup's own
        out = RunDir(out.path)
        ctx.run = out
        for name in DECIDED_AGAIN:
            if name != Step.dedup.value:
                result.stats.append(await run_whole(STAGES[name](ctx)))  # type: ignore[arg-type]
        write_json_atomic(out.path / "usage.json", summed([read_usage(run) for run in runs]))
        result.manifest = finish(ctx)
    finally:
        out.close()
        lock.release()
    return result


def merge(out_path: Path, shard_paths: list[Path], show_progress: bool = False) -> MergeResult:
    """``merge_runs`` in its own event loop, for the command."""
    return asyncio.run(merge_runs(out_path, shard_paths, show_progress))
