"""Shards: one build split over several machines or jobs, each building the concept pairs
whose id hashes to its index, in a run folder of its own; ``mis-data merge`` joins them.

A pair, its images, its questions, their MIS-real variants and twins all hang from the pair's
id (``ids.pair_of``), so a shard holds whole pairs and never needs another shard's records.
Every shard holds the whole concept list (so choices made over it, such as the offline
backend's wording plan, are the ones a single build makes) and only works on its own pairs.
"""

from __future__ import annotations

from pathlib import Path

from mis_data.core.config import ConfigError
from mis_data.core.ids import Shard
from mis_data.core.rundir import read_json_or_none, write_json_atomic

SHARD_FILE = "shard.json"
__all__ = ["SHARD_FILE", "Shard", "bind_shard", "read_shard"]  # Shard lives in core/ids


def read_shard(run_path: Path) -> Shard | None:
    """The shard a run folder builds, or None for a whole build."""
    data = read_json_or_none(run_path / SHARD_FILE)
    return None if data is None else Shard(int(data["index"]), int(data["count"]))


def bind_shard(run_path: Path, shard: Shard | None, new: bool) -> None:
    """Record a new run folder's shard, or refuse to continue a folder as another shard (or as
    a whole build): its records would be another shard's, or half of one."""
    found = read_shard(run_path)
    if not new and found != shard:
        what = f"shard {found}" if found else "a whole build"
        asked = f"--shard {shard}" if shard else "no --shard"
        raise ConfigError(f"{run_path}: this run folder holds {what}, and the command gives "
                          f"{asked}; run it with the same --shard as before, or use a new --run-dir")
    if new and shard is not None:
        write_json_atomic(run_path / SHARD_FILE, {"index": shard.index, "count": shard.count})

