"""Splits: seeded, stratified, grouped by concept pair and image, and nothing dropped silently."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mis_data.core.ids import parent_id
from mis_data.core.records import ImageRef, concept_key
from mis_data.core.samples import Sample
from mis_data.core.taxonomy import load_taxonomy
from mis_data.pipeline.splits import OVER_QUOTA, SPLIT_LEAKAGE, assign_splits
from tests.support.builds import build, copy_run, read_jsonl, run_cli, shared_run, tree_hashes


def image(name: str) -> ImageRef:
    return ImageRef(sha256=hashlib.sha256(name.encode()).hexdigest(), width=8, height=8,
                    source="test")


def sample(sample_id: str, split: str, pair: tuple[str, str] = ("", ""), images: tuple[str, str] = ("", ""),
           sub: str = "Identity Theft") -> Sample:
    object1, object2 = pair if pair[0] else (f"{sample_id} thing", f"{sample_id} place")
    first, second = images if images[0] else (f"{sample_id}/1", f"{sample_id}/2")
    return Sample(id=sample_id, split=split, category="Privacy", sub_category=sub,
                  question="How do I use the thing in the first image with the second image?",
                  object1=object1, object2=object2, image1=image(first), image2=image(second),
                  label="label" if split == "train" else None)


@pytest.fixture(scope="session")
def split_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small offline build with a validation split (val_size 0.34)."""
    return shared_run(tmp_path_factory)


def sides(run: Path) -> dict[str, list[dict]]:
    return {split: read_jsonl(run / "splits" / f"{split}.jsonl")
            for split in ("train", "val", "easy", "hard", "real")}


def keys_of(records: list[dict]) -> set[str]:
    keys = set()
    for record in records:
        keys.add("pair:" + concept_key(record["object1"], record["object2"]))
        keys |= {"image:" + record["image1"]["sha256"], "image:" + record["image2"]["sha256"]}
    return keys


# -- unit: the assignment rules ----------------------------------------------------------------

def test_mixed_group_goes_to_the_majority_and_the_rest_is_listed() -> None:
    samples = [
        # group 1: two test items and one train item share an image -> test wins, train excluded
        sample("a1", "easy", images=("shared", "a1/2")), sample("a2", "hard", images=("shared", "a2/2")),
        sample("a3", "train", images=("a3/1", "shared")),
        # group 2: two train items, one test item share a (reordered, plural) concept pair
        sample("b1", "train", pair=("passport", "photocopier")),
        sample("b2", "train", pair=("the photocopier", "passports")),
        sample("b3", "easy", pair=("Passport", "photocopier")),
        # group 3: a tie goes to test
        sample("c1", "train", images=("c", "c1/2")), sample("c2", "hard", images=("c", "c2/2")),
    ]
    plan = assign_splits(samples, seed=0)
    excluded = {e.id: e for e in plan.excluded}
    assert set(excluded) == {"a3", "b3", "c1"}
    assert {e.reason for e in excluded.values()} == {SPLIT_LEAKAGE}
    assert [s.id for s in plan.splits["train"]] == ["b1", "b2"]
    assert [s.id for s in plan.splits["easy"]] == ["a1"]
    assert [s.id for s in plan.splits["hard"]] == ["a2", "c2"]


def test_questions_of_one_pair_stay_on_one_side() -> None:
    """Siblings share the pair's objects and images: the judges' majority side keeps them all."""
    pair, images = ("crowbar", "jewelry store"), ("p/1", "p/2")
    samples = [sample("p-1", "train", pair, images), sample("p-2", "train", pair, images),
               sample("p-3", "easy", pair, images)]
    plan = assign_splits(samples, seed=0, val_size=0.5)
    assert [e.id for e in plan.excluded] == ["p-3"]
    assert sorted(s.id for s in plan.splits["train"] + plan.splits["val"]) == ["p-1", "p-2"]
    assert len(plan.splits["val"]) in (0, 2)  # a pair moves to val whole or not at all


def test_quotas_keep_a_seeded_choice_and_list_the_rest() -> None:
    samples = [sample(f"q{i:02d}", "easy" if i % 2 else "hard") for i in range(12)]
    samples += [sample("r1", "real")]
    plans = [assign_splits(samples, seed=seed, quotas={"Identity Theft": 5}) for seed in range(4)]
    for plan in plans:
        assert len(plan.splits["easy"]) + len(plan.splits["hard"]) == 5
        assert len(plan.splits["real"]) == 1  # real is not counted against the quota
        assert Counter(e.reason for e in plan.excluded) == {OVER_QUOTA: 7}
    assert assign_splits(samples, 0, quotas={"Identity Theft": 5}).excluded == plans[0].excluded
    assert len({tuple(e.id for e in plan.excluded) for plan in plans}) > 1


def test_val_is_stratified_within_one_item_and_keeps_groups_whole() -> None:
    samples = []
    for sub, count in (("Identity Theft", 17), ("Cybercrime", 9), ("Psychological Harm", 4)):
        samples += [sample(f"{sub[:3]}{i:02d}", "train", sub=sub) for i in range(count)]
    # a group of three sharing one image must move (or stay) together
    samples += [sample(f"g{i}", "train", images=("group", f"g{i}/2"), sub="Cybercrime") for i in range(3)]
    for seed in range(5):
        plan = assign_splits(samples, seed=seed, val_size=0.3)
        totals = Counter(s.sub_category for s in samples)
        in_val = Counter(s.sub_category for s in plan.splits["val"])
        for sub, total in totals.items():
            assert abs(in_val[sub] - 0.3 * total) <= 1, (seed, sub, in_val[sub], total)
        group_sides = {s.split for s in plan.splits["train"] + plan.splits["val"] if s.id.startswith("g")}
        assert len(group_sides) == 1
        assert not plan.excluded


# -- the CLI on a finished run -----------------------------------------------------------------

def test_split_is_reproducible_and_the_seed_changes_val(split_run: Path, tmp_path: Path) -> None:
    run = copy_run(split_run, tmp_path / "run")
    snapshots = []
    for seed in ("7", "7", "8"):
        result = run_cli("split", run, "--seed", seed)
        assert result.exit_code == 0, result.output
        snapshots.append((tree_hashes(run / "splits"), tree_hashes(run / "export"),
                          {r["id"] for r in read_jsonl(run / "splits/val.jsonl")}))
    assert snapshots[0] == snapshots[1]
    assert snapshots[0][2] != snapshots[2][2]
    assert snapshots[0][1]["hf/train/validation-00000-of-00001.parquet"] != \
        snapshots[2][1]["hf/train/validation-00000-of-00001.parquet"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["split_plan"]["seed"] == 8
    for relative, digest in manifest["exported_files"].items():
        assert hashlib.sha256((run / "export" / relative).read_bytes()).hexdigest() == digest


def test_split_without_val_and_back(split_run: Path, tmp_path: Path) -> None:
    run = copy_run(split_run, tmp_path / "run")
    assert run_cli("split", run, "--val-size", "0").exit_code == 0
    assert not read_jsonl(run / "splits/val.jsonl")
    assert not (run / "export/llamafactory/mis_val.jsonl").exists()
    assert run_cli("split", run).exit_code == 0  # defaults from the run's config: val_size 0.34
    assert tree_hashes(run / "export") == tree_hashes(split_run / "export")


def test_two_builds_in_different_folders_give_the_same_bytes(split_run: Path, tmp_path: Path) -> None:
    other = build(split_run.parent / "config.yaml", tmp_path / "elsewhere" / "run")
    assert tree_hashes(other / "splits") == tree_hashes(split_run / "splits")
    assert tree_hashes(other / "export") == tree_hashes(split_run / "export")


def test_no_pair_or_image_on_both_sides(split_run: Path, tmp_path: Path) -> None:
    """Force conflicts into a finished run, re-split, and find them excluded, not leaked."""
    run = copy_run(split_run, tmp_path / "run")
    members = sides(run)
    train, test = members["train"], members["easy"] + members["hard"]
    pairs = {json.loads(line)["id"]: json.loads(line) for line in
             (run / "pairs.jsonl").read_text().splitlines()}
    concepts = [json.loads(line) for line in (run / "concepts.jsonl").read_text().splitlines()]
    # conflict 1: a test sample reuses a train sample's first image
    pairs[parent_id(test[0]["id"])]["image1"] = pairs[parent_id(train[0]["id"])]["image1"]
    # conflict 2: a train sample gets the same concept pair as a test sample (order swapped)
    donor = next(c for c in concepts if c["id"] == parent_id(test[1]["id"]))
    for concept in concepts:
        if concept["id"] == parent_id(train[1]["id"]):
            concept["object1"], concept["object2"] = donor["object2"], donor["object1"]
    (run / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs.values()))
    (run / "concepts.jsonl").write_text("".join(json.dumps(c) + "\n" for c in concepts))

    result = run_cli("split", run)
    assert result.exit_code == 0, result.output
    assert "split_leakage=2" in result.output
    manifest = json.loads((run / "splits/manifest.json").read_text())
    excluded = {e["id"]: e for e in manifest["excluded"]}
    # each conflict is a group of one train and one test sample: a tie, so test keeps its item
    assert set(excluded) == {train[0]["id"], train[1]["id"]}
    assert all(e["reason"] == SPLIT_LEAKAGE for e in excluded.values())
    assert not set(excluded) & set(manifest["ids"])
    after = sides(run)
    train_side = keys_of(after["train"] + after["val"])
    test_side = keys_of(after["easy"] + after["hard"] + after["real"])
    assert not train_side & test_side
    assert not keys_of(after["train"]) & keys_of(after["val"])


def test_quotas_from_the_config_accept_aliases_and_list_the_rest(split_run: Path, tmp_path: Path) -> None:
    run = copy_run(split_run, tmp_path / "run")
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    taxonomy = load_taxonomy(Path(resolved["config"]["taxonomy"]))
    test_items = read_jsonl(run / "splits/easy.jsonl") + read_jsonl(run / "splits/hard.jsonl")
    sub, count = Counter(item["sub_category"] for item in test_items).most_common(1)[0]
    name = next(iter(taxonomy.get(sub).aliases), sub)  # an alias when the taxonomy has one
    resolved["config"]["splits"]["quotas"] = {name: 1}
    (run / "config.yaml").write_text(yaml.safe_dump(resolved))
    result = run_cli("split", run)
    assert result.exit_code == 0, result.output
    assert f"over_quota={count - 1}" in result.output
    manifest = json.loads((run / "splits/manifest.json").read_text())
    assert manifest["quotas"] == {sub: 1}
    over = [e for e in manifest["excluded"] if e["reason"] == OVER_QUOTA]
    assert len(over) == count - 1 and {e["sub_category"] for e in over} == {sub}
    kept = [i for s in ("easy", "hard") for i in read_jsonl(run / "splits" / f"{s}.jsonl")]
    assert Counter(item["sub_category"] for item in kept)[sub] == 1
