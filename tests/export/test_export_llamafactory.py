"""LLaMA-Factory / ms-swift export: record shape, dataset_info entries, validator rules.

The validator resolves image paths as LLaMA-Factory's converter does (``media_dir/path`` when it
is a file, else the path as given, from the working folder), so these tests pin the working
folder with ``monkeypatch.chdir``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mis_data.export.common import SYSTEM_PROMPT
from mis_data.export.llamafactory_check import validate_llamafactory
from tests.support.builds import read_jsonl, run_cli, shared_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def test_records_are_messages_plus_images(run: Path) -> None:
    folder = run / "export/llamafactory"
    for split in ("train", "val"):
        records = read_jsonl(folder / f"mis_{split}.jsonl")
        samples = read_jsonl(run / "splits" / f"{split}.jsonl")
        assert [r["id"] for r in records] == [s["id"] for s in samples]
        for record, sample in zip(records, samples, strict=True):
            assert list(record) == ["id", "messages", "images"]
            assert record["messages"] == [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "<image><image>" + sample["question"]},
                {"role": "assistant", "content": sample["label"]},
            ]
            assert record["images"] == [f"images/{sample['id']}/object1.png",
                                        f"images/{sample['id']}/object2.png"]
            assert all((folder / path).is_file() for path in record["images"])


def test_dataset_info_entries(run: Path) -> None:
    info = json.loads((run / "export/llamafactory/dataset_info.json").read_text())
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
            "assistant_tag": "assistant", "system_tag": "system"}
    assert info["mis_train"] == {"file_name": "mis_train.jsonl", "formatting": "sharegpt",
                                 "columns": {"messages": "messages", "images": "images"}, "tags": tags}
    assert info["mis_val"]["file_name"] == "mis_val.jsonl"
    assert info["mis_train_internvl_style"] == {
        "file_name": "mis_train_internvl_style.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "image"}}
    assert list(info) == ["mis_train", "mis_val", "mis_train_internvl_style"]


def test_internvl_style_records_resolve_from_the_dataset_folder(run: Path) -> None:
    """The InternVL record, prompt included, with this folder's image paths (issue #18)."""
    folder = run / "export/llamafactory"
    records = read_jsonl(folder / "mis_train_internvl_style.jsonl")
    internvl = read_jsonl(run / "export/internvl/mis_train.jsonl")
    native = read_jsonl(folder / "mis_train.jsonl")
    assert len(records) == len(internvl) == len(native) > 0
    for record, original, same in zip(records, internvl, native, strict=True):
        assert record["image"] == same["images"] == [f"images/{p}" for p in original["image"]]
        assert {k: v for k, v in record.items() if k != "image"} == \
               {k: v for k, v in original.items() if k != "image"}
        assert all((folder / path).is_file() for path in record["image"])


def test_the_export_validates(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may resolve through the working folder
    result = run_cli("validate", run / "export/llamafactory", "--format", "llamafactory")
    assert result.exit_code == 0, result.output
    native = sum(len(read_jsonl(run / "splits" / f"{s}.jsonl")) for s in ("train", "val"))
    internvl_style = len(read_jsonl(run / "splits/train.jsonl"))
    assert f"ok: {native + internvl_style} records checked" in result.output
    # Relative paths: LLaMA-Factory is fine, ms-swift needs ROOT_IMAGE_DIR: a warning, not a failure.
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3 and all("ROOT_IMAGE_DIR=" in line for line in warnings)


def old_internvl_style_entry(run: Path, tmp_path: Path) -> Path:
    """Today's (before #18) entry: the InternVL file, whose paths are relative to InternVL's root."""
    export = tmp_path / "export"
    shutil.copytree(run / "export/llamafactory", export / "llamafactory")
    shutil.copytree(run / "export/internvl", export / "internvl")
    folder = export / "llamafactory"
    info = json.loads((folder / "dataset_info.json").read_text())
    info["mis_train_internvl_style"] = {"file_name": "../internvl/mis_train.jsonl",
                                        "formatting": "sharegpt",
                                        "columns": {"messages": "conversations", "images": "image"}}
    (folder / "dataset_info.json").write_text(json.dumps(info))
    return folder


def test_an_entry_whose_images_are_not_under_media_dir_fails(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression for #18: LLaMA-Factory logged 'Media ... does not exist in media_dir' and
    tokenization raised FileNotFoundError for every row; the validator used to pass it."""
    folder = old_internvl_style_entry(run, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", folder, "--format", "llamafactory")
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines()
                if line and not line.startswith("warning: ") and "problem(s) in" not in line]
    rows = len(read_jsonl(folder.parent / "internvl/mis_train.jsonl"))
    assert len(problems) == 2 * rows  # both images of every row, nothing from the other entries
    first = read_jsonl(folder.parent / "internvl/mis_train.jsonl")[0]["image"][0]
    assert problems[0] == (f"../internvl/mis_train.jsonl:1: image not found: "
                           f"{first} is not in media_dir {folder} (LLaMA-Factory then opens it "
                           "as given, where it does not exist either)")


def test_one_media_dir_serves_one_entry_only(run: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Pointing media_dir at InternVL's root fixes the old entry and breaks the native ones."""
    folder = old_internvl_style_entry(run, tmp_path)
    monkeypatch.chdir(tmp_path)
    problems = validate_llamafactory(folder, media_dir=folder.parent / "internvl/images").problems
    broken_files = {p.split(":")[0] for p in problems}
    assert broken_files == {"mis_train.jsonl", "mis_val.jsonl"}  # the old entry now loads


def test_a_path_found_only_from_the_working_folder_is_a_warning(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LLaMA-Factory falls back to the path as given: it loads, but only from that folder."""
    folder = old_internvl_style_entry(run, tmp_path)
    monkeypatch.chdir(folder.parent / "internvl/images")
    report = validate_llamafactory(folder)
    assert report.ok, report.problems[:3]
    assert any(w.startswith("dataset_info.json: mis_train_internvl_style: images such as ")
               and w.endswith(f"they load only when training starts in {Path.cwd()}")
               for w in report.warnings)


def test_absolute_paths_load_from_anywhere(run: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    result = run_cli("export", copy, "--format", "llamafactory", "--absolute-paths")
    assert result.exit_code == 0, result.output
    folder = copy / "export/llamafactory"
    for name in ("mis_train.jsonl", "mis_val.jsonl", "mis_train_internvl_style.jsonl"):
        for record in read_jsonl(folder / name):
            paths = record.get("images") or record["image"]
            assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
            assert all(Path(p).is_relative_to(folder.resolve()) for p in paths)  # not the temp folder
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", folder, "--format", "llamafactory")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_broken_copy_fails_per_rule(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "llamafactory"
    shutil.copytree(run / "export/llamafactory", folder)
    path = folder / "mis_train.jsonl"
    records = read_jsonl(path)
    records[0]["messages"][2]["content"] += " <image>"                  # count over all messages
    records[1]["messages"][1]["role"] = "assistant"                       # roles must alternate
    records[2]["messages"] = records[2]["messages"][:2]                   # odd number of turns
    (folder / records[3]["images"][1]).unlink()                           # image must exist
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    info = json.loads((folder / "dataset_info.json").read_text())
    info["mis_val"]["file_name"] = "missing.jsonl"                        # entry must resolve
    (folder / "dataset_info.json").write_text(json.dumps(info))

    problems = validate_llamafactory(folder).problems
    assert "mis_train.jsonl:1: 3 <image> tokens in the messages for 2 images " \
           "(LLaMA-Factory raises ValueError)" in problems
    assert any(p.startswith("mis_train.jsonl:2: turn 0: role 'assistant'") for p in problems)
    assert any(p.startswith("mis_train.jsonl:3: 1 turns after the system turn") for p in problems)
    assert any(p.startswith("mis_train.jsonl:4: image not found") for p in problems)
    # the InternVL-style file uses the same image files
    assert any(p.startswith("mis_train_internvl_style.jsonl:4: image not found") for p in problems)
    assert any(p.startswith("dataset_info.json: mis_val: file_name 'missing.jsonl' does not resolve")
               for p in problems)
    assert len(problems) == 6
