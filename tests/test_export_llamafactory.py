"""LLaMA-Factory / ms-swift export: record shape, dataset_info entries, validator rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _builds import read_jsonl, run_cli, shared_run

from mis_data.export.common import SYSTEM_PROMPT
from mis_data.export.validate import validate_llamafactory


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
        "file_name": "../internvl/mis_train.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "image"}}


def test_the_export_validates(run: Path) -> None:
    result = run_cli("validate", run / "export/llamafactory", "--format", "llamafactory")
    assert result.exit_code == 0, result.output
    native = sum(len(read_jsonl(run / "splits" / f"{s}.jsonl")) for s in ("train", "val"))
    internvl_style = len(read_jsonl(run / "export/internvl/mis_train.jsonl"))
    assert f"ok: {native + internvl_style} records checked" in result.output


def test_broken_copy_fails_per_rule(run: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(run / "export/llamafactory", export / "llamafactory")
    shutil.copytree(run / "export/internvl", export / "internvl")
    folder = export / "llamafactory"
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
    assert any(p.startswith("dataset_info.json: mis_val: file_name 'missing.jsonl' does not resolve")
               for p in problems)
    assert len(problems) == 5
