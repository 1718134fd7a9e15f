"""The foundation's promises, end to end: the offline demo builds, resumes, and reproduces."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image

from mis_data.core.taxonomy import load_taxonomy
from tests.support.builds import tree_hashes
from tests.support.cli import run_cli, write_config
from tests.support.paths import CONFIGS, PROMPTS

RUN_FILES = ("config.yaml", "concepts.jsonl", "images.jsonl", "pairs.jsonl", "instructions.jsonl",
             "judgements.jsonl", "labels.jsonl", "rejects.jsonl", "manifest.json")




def export_image_paths(run: Path) -> list[Path]:
    """Every image path named in the MIS and InternVL exports, resolved."""
    paths = []
    for file in (run / "export/mis").rglob("mis_*.json"):
        for item in json.loads(file.read_text()):
            paths += [file.parent / item["image_path1"], file.parent / item["image_path2"]]
    meta = json.loads((run / "export/internvl/meta.json").read_text())
    for entry in meta.values():
        root = run / "export/internvl" / entry["root"]
        for line in (run / "export/internvl" / entry["annotation"]).read_text().splitlines():
            paths += [root / p for p in json.loads(line)["image"]]
    return paths


def test_demo_writes_every_run_file(demo_run: Path) -> None:
    for name in RUN_FILES:
        assert (demo_run / name).is_file(), name
    assert list((demo_run / "images").rglob("*.png"))
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["backend"] == "offline" and manifest["offline"] is True
    assert manifest["exported_files"]
    for relative, digest in manifest["exported_files"].items():
        assert hashlib.sha256((demo_run / "export" / relative).read_bytes()).hexdigest() == digest


def test_demo_has_train_easy_hard_and_enough_samples(demo_run: Path) -> None:
    counts = json.loads((demo_run / "splits/manifest.json").read_text())["counts"]
    assert counts["train"] > 0 and counts["easy"] > 0 and counts["hard"] > 0
    assert counts["train"] + counts["easy"] + counts["hard"] >= 100


def test_demo_exports_cover_all_14_sub_categories(demo_run: Path) -> None:
    taxonomy = load_taxonomy(CONFIGS / "taxonomy.yaml")
    seen = set()
    for file in (demo_run / "export/mis").rglob("mis_*.json"):
        seen |= {item["sub_category"] for item in json.loads(file.read_text())}
    assert seen == set(taxonomy.sub_category_names)
    internvl = (demo_run / "export/internvl/mis_train.jsonl").read_text().splitlines()
    assert {json.loads(line)["sub_category"] for line in internvl} == seen


def test_every_exported_image_exists_and_opens(demo_run: Path) -> None:
    paths = export_image_paths(demo_run)
    assert len(paths) >= 200
    for path in paths:
        with Image.open(path) as image:
            image.verify()


def test_internvl_records_follow_the_format(demo_run: Path) -> None:
    for line in (demo_run / "export/internvl/mis_train.jsonl").read_text().splitlines():
        record = json.loads(line)
        human, gpt = record["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].startswith("Image-1: <image>\nImage-2: <image>\n")
        assert human["value"].count("<image>") == len(record["image"]) == 2
        assert "<image>" not in gpt["value"] and gpt["value"]
        sizes = [Image.open(demo_run / "export/internvl/images" / p).size for p in record["image"]]
        assert record["width_list"] == [w for w, _ in sizes]
        assert record["height_list"] == [h for _, h in sizes]


def test_mis_test_items_have_the_released_fields(demo_run: Path) -> None:
    for split in ("easy", "hard"):
        items = json.loads((demo_run / f"export/mis/mis_test/mis_{split}.json").read_text())
        assert [item["id"] for item in items] == list(range(1, len(items) + 1))
        for item in items:
            assert list(item) == ["id", "category", "sub_category", "question", "image_path1",
                                  "image_path2"]
            assert item["image_path1"] == f"{split}_image/{item['id']}/object1.png"
            assert "first image" in item["question"] and "second image" in item["question"]


def test_rerun_is_a_no_op(demo_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(demo_run, copy)
    before = tree_hashes(copy / "export")
    result = run_cli("build", "--config", CONFIGS / "demo.yaml", "--run-dir", copy, "--no-progress")
    assert result.exit_code == 0, result.output
    for stage in ("concepts", "images", "pairs", "instructions", "judgements", "labels"):
        assert any(line.startswith(stage) and "already done" in line
                   for line in result.output.splitlines()), stage
    assert tree_hashes(copy / "export") == before


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / name,
                         "--seed", seed, "--no-progress")
        assert result.exit_code == 0, result.output
        runs[name] = tree_hashes(tmp_path / name / "export")
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_a_run_folder_refuses_another_config(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                   "--no-progress").exit_code == 0
    result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--seed", "7",
                     "--no-progress")
    assert result.exit_code == 2
    assert "different config" in result.output


def test_a_new_prompt_file_does_not_orphan_a_run_folder(tmp_path: Path) -> None:
    """A new version ships prompt files for new options: a run folder built before continues
    (nothing is redone); a changed or removed prompt it was built with is refused."""
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS, prompts)
    config = write_config(tmp_path, prompts_dir=str(prompts))
    run = tmp_path / "run"
    assert run_cli("build", "--config", config, "--run-dir", run, "--no-progress").exit_code == 0
    before = tree_hashes(run / "export")
    (prompts / "a_new_option.md").write_text("A prompt for an option this build does not use.\n")
    again = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert again.exit_code == 0, again.output
    assert "ran " not in again.output.split("stage")[-1]  # every stage already done
    changed = tree_hashes(run / "export")
    assert {name for name in before if before[name] != changed.get(name)} <= {
        name for name in before if name.endswith("README.md")}  # the card lists the prompts
    (prompts / "label.md").write_text((prompts / "label.md").read_text() + "\nBe brief.\n")
    refused = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert refused.exit_code == 2 and "different config or prompts" in refused.output


def test_info_lists_counts_and_rejects(demo_run: Path) -> None:
    result = run_cli("info", demo_run)
    assert result.exit_code == 0, result.output
    assert "backend: offline" in result.output
    assert "instructions" in result.output and "splits:" in result.output
    assert "train=" in result.output and "easy=" in result.output


def test_a_run_folder_from_another_version_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = tmp_path / "run"
    assert run_cli("build", "--config", config, "--run-dir", run, "--no-progress").exit_code == 0
    resolved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(resolved.replace("format_version: 1", "format_version: 0"))
    result = run_cli("build", "--config", config, "--run-dir", run, "--no-progress")
    assert result.exit_code == 2
    assert "format 0" in result.output and "new --run-dir" in result.output
