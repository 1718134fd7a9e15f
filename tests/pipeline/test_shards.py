"""A build split into shards (``build --shard i/N``) and joined (``mis-data merge``) gives the
exports of a single build, byte for byte; shards that are not one build are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mis_data.core.ids import shard_of
from mis_data.core.shards import Shard
from mis_data.pipeline.merge import line_id, sample_of
from tests.support.builds import build, run_cli, tree_hashes, write_config


def sharded_config(folder: Path) -> Path:
    """A small offline build with twins (a later per-item step that hangs from samples)."""
    return write_config(folder, twins={"ratio": 0.5})


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shards")
    config = sharded_config(root)
    runs = {"single": build(config, root / "single")}
    for index in range(3):
        runs[f"shard{index}"] = build(config, root / f"shard{index}", "--shard", f"{index}/3")
    result = run_cli("merge", root / "merged", *(runs[f"shard{i}"] for i in range(3)))
    assert result.exit_code == 0, result.output
    runs["merged"] = root / "merged"
    runs["config"] = config
    return runs


def test_three_shards_merge_into_the_single_builds_exports(built: dict[str, Path]) -> None:
    single, merged = tree_hashes(built["single"] / "export"), tree_hashes(built["merged"] / "export")
    assert single and merged == single
    assert (built["merged"] / "splits").is_dir()


def test_each_shard_built_only_its_own_pairs(built: dict[str, Path]) -> None:
    counts = []
    for index in range(3):
        rows = [json.loads(line) for line in
                (built[f"shard{index}"] / "judgements.jsonl").read_text().splitlines()]
        assert rows and all(shard_of(row["id"], 3) == index for row in rows)
        counts.append(len(rows))
        concepts = (built[f"shard{index}"] / "concepts.jsonl").read_bytes()
        assert concepts == (built["single"] / "concepts.jsonl").read_bytes()  # the whole list
    single = (built["single"] / "judgements.jsonl").read_text().splitlines()
    assert sum(counts) == len(single)


def test_merge_again_gives_the_same_folder(built: dict[str, Path]) -> None:
    before = tree_hashes(built["merged"] / "export")
    result = run_cli("merge", built["merged"], *(built[f"shard{i}"] for i in range(3)))
    assert result.exit_code == 0, result.output
    assert tree_hashes(built["merged"] / "export") == before


def test_shards_that_are_not_one_build_are_refused(built: dict[str, Path], tmp_path: Path) -> None:
    missing = run_cli("merge", tmp_path / "a", built["shard0"], built["shard2"])
    assert missing.exit_code != 0 and "1/3 missing" in missing.output
    twice = run_cli("merge", tmp_path / "b", built["shard0"], built["shard0"], built["shard1"])
    assert twice.exit_code != 0 and "given twice" in twice.output
    whole = run_cli("merge", tmp_path / "c", built["single"], built["shard1"], built["shard2"])
    assert whole.exit_code != 0 and "not a shard" in whole.output
    other = write_config(tmp_path / "other", seed=7, twins={"ratio": 0.5})
    stranger = build(other, tmp_path / "stranger", "--shard", "1/3")
    mixed = run_cli("merge", tmp_path / "d", built["shard0"], stranger, built["shard2"])
    assert mixed.exit_code != 0 and "another config" in mixed.output
    assert not (tmp_path / "d" / "export").exists()


def test_a_shard_folder_continues_only_as_that_shard(built: dict[str, Path]) -> None:
    result = run_cli("build", "--config", built["config"], "--run-dir", built["shard1"],
                     "--no-progress", "--shard", "2/3")
    assert result.exit_code != 0 and "holds shard 1/3" in result.output
    whole = run_cli("build", "--config", built["config"], "--run-dir", built["shard1"],
                    "--no-progress")
    assert whole.exit_code != 0 and "holds shard 1/3" in whole.output


def test_shard_arguments_and_targets_are_checked(tmp_path: Path) -> None:
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(Exception, match="expected i/N"):
            Shard.parse(bad)
    config = write_config(tmp_path, targets={"train": 2})
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress",
                     "--shard", "0/2")
    assert result.exit_code != 0 and "targets" in result.output


def test_a_later_record_follows_the_sample_it_hangs_from() -> None:
    pair = "0123456789abcdef"
    assert sample_of(f"{pair}-2~t.1") == sample_of(f"{pair}-2") == f"{pair}-2"
    assert sample_of(f"{pair}-2.real") == f"{pair}-2" and sample_of(pair) == pair
    assert line_id(json.dumps({"id": f"{pair}-1", "text": "x"})) == f"{pair}-1"


def test_near_duplicates_in_different_shards_are_dropped_as_in_a_single_build(
        tmp_path: Path) -> None:
    """Each shard sees only its own pairs, so a question whose near-duplicate lives in another
    shard passes the shard's dedup and is judged and labelled there; the merge's dedup over
    every pair drops it again, with everything that hangs from it, as a single build does."""
    config = write_config(tmp_path, dedup={"image_hash_distance": 64, "text_jaccard": 0.4})
    single = build(config, tmp_path / "single")
    shards = [build(config, tmp_path / f"shard{i}", "--shard", f"{i}/2") for i in range(2)]
    result = run_cli("merge", tmp_path / "merged", *shards)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "single" / "dedup.json").read_text())
    across = [flag for flag in report["flags"] if "text" in flag["signals"]
              and flag["other"] in report["rejected"]
              and shard_of(flag["kept"], 2) != shard_of(flag["other"], 2)]
    assert across  # the case under test happens in this build
    judged_in_shards = {json.loads(line)["id"] for shard in shards
                        for line in (shard / "judgements.jsonl").read_text().splitlines()}
    assert {flag["other"] for flag in across} & judged_in_shards  # a shard did judge one
    assert tree_hashes(tmp_path / "merged" / "export") == tree_hashes(single / "export")
