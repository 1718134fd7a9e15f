"""Hugging Face export: loads with datasets after the run's images are gone; the card is right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datasets import Image as ImageFeature
from datasets import List, get_dataset_config_names, load_dataset
from huggingface_hub import DatasetCard
from PIL import Image

from mis_data.export.hf_check import validate_hf
from tests.support.builds import read_jsonl, run_cli, shared_run, tree_hashes

SPLIT_OF = {("train", "train"): "train", ("train", "validation"): "val", ("easy", "test"): "easy",
            ("hard", "test"): "hard", ("real", "test"): "real"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def test_every_config_loads_without_the_source_images(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "images")
    for images in copy.glob("export/*/images"):
        shutil.rmtree(images)
    shutil.rmtree(copy / "export/mis")
    folder = copy / "export/hf"
    assert get_dataset_config_names(str(folder)) == ["train", "easy", "hard"]
    for config in ("train", "easy", "hard"):
        loaded = load_dataset(str(folder), config, cache_dir=str(tmp_path / "cache"))
        for split, dataset in loaded.items():
            expected = read_jsonl(run / "splits" / f"{SPLIT_OF[(config, split)]}.jsonl")
            assert dataset.num_rows == len(expected) > 0
            assert dataset.features["images"] == List(ImageFeature())
            for row, sample in zip(dataset, expected, strict=True):
                assert len(row["images"]) == 2
                for picture, ref in zip(row["images"], (sample["image1"], sample["image2"]), strict=True):
                    assert isinstance(picture, Image.Image)
                    assert picture.size == (ref["width"], ref["height"])
                assert row["question"] == sample["question"]
            if config == "train":
                assert list(dataset.features) == ["id", "images", "messages", "question", "label",
                                                  "category", "sub_category"]
                assert [m["role"] for m in dataset[0]["messages"]] == ["system", "user", "assistant"]
            else:
                assert list(dataset.features) == ["id", "category", "sub_category", "question",
                                                  "images", "image_path1", "image_path2"]
                assert dataset[0]["id"] == 1
                assert dataset[0]["image_path1"] == f"{config}_image/1/object1.png"


def test_card_front_matter_and_body(run: Path) -> None:
    card = DatasetCard.load(run / "export/hf/README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc-by-nc-4.0"
    assert data["language"] == ["en"]
    assert data["task_categories"] == ["image-text-to-text", "visual-question-answering"]
    assert data["tags"] == ["safety", "multimodal", "multi-image", "chain-of-thought", "mis"]
    assert data["size_categories"] == ["n<1K"]
    assert data["pretty_name"] and data["extra_gated_prompt"]
    assert data["configs"][0] == {"config_name": "train", "default": True, "data_files": [
        {"split": "train", "path": "train/train-*"},
        {"split": "validation", "path": "train/validation-*"}]}
    assert [c["data_files"] for c in data["configs"][1:]] == [
        [{"split": "test", "path": "easy/test-*"}], [{"split": "test", "path": "hard/test-*"}]]
    folder = run / "export/hf"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert files == ["easy/test-00000-of-00001.parquet", "hard/test-00000-of-00001.parquet",
                     "train/train-00000-of-00001.parquet", "train/validation-00000-of-00001.parquet"]
    body = card.text
    assert "OFFLINE BUILD — NOT MODEL-GENERATED" in body and "typography" in body
    assert "Content warning" in body and "Intended use" in body
    assert 'load_dataset("path/or/owner-name", "train")' in body
    assert "Works with `datasets` 3.6 and later" in body  # test_export_hf_old_datasets.py holds it to that
    for split in ("train", "easy", "hard"):
        count = len(read_jsonl(run / "splits" / f"{split}.jsonl"))
        assert f"**{count}**" in body
    assert "label.md" in body  # prompt hashes are listed


def test_export_is_byte_identical_when_rewritten(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    result = run_cli("export", copy, "--format", "hf")
    assert result.exit_code == 0, result.output
    assert "export/hf:" in result.output
    assert tree_hashes(copy / "export") == tree_hashes(run / "export")


def test_validator_reports_a_config_that_does_not_load(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    shutil.copytree(run / "export/hf", folder)
    (folder / "hard/test-00000-of-00001.parquet").unlink()
    problems = validate_hf(folder).problems
    assert any(p.startswith("README.md: config hard: no file matches") for p in problems)
    assert any(p.startswith("README.md: config hard: load_dataset failed") for p in problems)


def test_large_splits_are_sharded_and_still_load(run: Path, tmp_path: Path) -> None:
    from mis_data.core.rundir import RunDir
    from mis_data.core.samples import read_splits
    from mis_data.export.hf import export_hf
    from mis_data.images.store import ImageStore

    splits = read_splits(RunDir(run))
    out = tmp_path / "hf"
    out.mkdir()
    export_hf(splits, ImageStore(run / "images"), out, max_shard_bytes=1)  # one row per shard
    hard = sorted(p.name for p in (out / "hard").glob("*.parquet"))
    assert len(hard) == len(splits["hard"]) and hard[-1].endswith(f"-of-{len(hard):05d}.parquet")
    loaded = load_dataset(str(out), "hard", cache_dir=str(tmp_path / "cache"))["test"]
    assert loaded["id"] == list(range(1, len(hard) + 1))


def test_stored_features_are_the_datasets_3_form(run: Path) -> None:
    """Issue #18: datasets < 4 rejects '"_type": "List"'; the files store Sequence / [ {...} ],
    which today's datasets reads back as the very same features."""
    import json

    import pyarrow.parquet as pq
    from datasets import Features

    from mis_data.export.hf import TEST_FEATURES, TRAIN_FEATURES

    for path in sorted((run / "export/hf").rglob("*.parquet")):
        stored = json.loads(pq.read_schema(path).metadata[b"huggingface"])["info"]["features"]
        assert stored["images"] == {"feature": {"_type": "Image"}, "_type": "Sequence"}
        assert '"List"' not in json.dumps(stored)
        expected = TRAIN_FEATURES if path.parent.name == "train" else TEST_FEATURES
        if expected is TRAIN_FEATURES:
            assert stored["messages"] == [{"role": {"dtype": "string", "_type": "Value"},
                                           "content": {"dtype": "string", "_type": "Value"}}]
        assert Features.from_dict(stored) == expected


def test_validator_reports_features_old_datasets_cannot_read(run: Path, tmp_path: Path) -> None:
    """The export as it was before #18 (datasets' own to_parquet): the validator says why 3.x fails."""
    from datasets import Dataset

    folder = tmp_path / "hf"
    shutil.copytree(run / "export/hf", folder)
    path = folder / "easy/test-00000-of-00001.parquet"
    Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache")).to_parquet(str(path))
    assert validate_hf(folder).problems == [
        "easy/test-00000-of-00001.parquet: stores feature type(s) List: datasets < 4.0 cannot load "
        "it (ValueError: Feature type ... not found)"]


def test_a_list_with_no_datasets_3_form_is_refused() -> None:
    from datasets import Features, Value

    from mis_data.export.hf import datasets3_form

    fixed = Features({"pair": List(Value("int64"), length=2)}).to_dict()
    with pytest.raises(ValueError, match="no datasets 3.x form"):
        datasets3_form(fixed)


def test_a_rewritten_export_loads_fresh_from_the_same_cache(run: Path, tmp_path: Path) -> None:
    """``datasets`` keys its cache of a local folder on the card's metadata only: when a reviewer
    drops a sample, the card's ``dataset_info`` (rows and bytes per split) must change, or
    ``load_dataset`` gives the old rows back from the same cache."""
    copy, cache = tmp_path / "run", str(tmp_path / "cache")
    shutil.copytree(run, copy)
    train = read_jsonl(run / "splits/train.jsonl")
    before = load_dataset(str(copy / "export/hf"), "train", cache_dir=cache)
    assert before["train"].num_rows == len(train) > 1
    decision = {"id": train[0]["id"], "action": "drop", "reason": "duplicate",
                "reviewer": "test", "at": "2026-01-01T00:00:00Z"}
    (tmp_path / "decisions.jsonl").write_text(json.dumps(decision) + "\n", encoding="utf-8")
    result = run_cli("apply-decisions", copy, tmp_path / "decisions.jsonl")
    assert result.exit_code == 0, result.output
    after = load_dataset(str(copy / "export/hf"), "train", cache_dir=cache)
    assert after["train"].num_rows == len(read_jsonl(copy / "splits/train.jsonl")) == len(train) - 1
    assert train[0]["id"] not in after["train"]["id"]
