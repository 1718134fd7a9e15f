"""InternVL export: real image sizes, and the validator catching each kind of loader failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mis_data.export.internvl_check import validate_internvl
from tests.support.builds import read_jsonl, run_cli, shared_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def test_sizes_are_the_real_image_sizes_and_val_is_registered(run: Path) -> None:
    folder = run / "export/internvl"
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta) == {"mis_train", "mis_val"}
    for entry in meta.values():
        records = read_jsonl(folder / entry["annotation"])
        assert entry["length"] == len(records) > 0
        for record in records:
            sizes = []
            for path in record["image"]:
                with Image.open(folder / entry["root"] / path) as picture:
                    sizes.append(picture.size)
            assert record["width_list"] == [w for w, _ in sizes]
            assert record["height_list"] == [h for _, h in sizes]


def test_the_export_validates(run: Path) -> None:
    result = run_cli("validate", run / "export/internvl", "--format", "internvl")
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output


def broken_copy(run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "internvl"
    shutil.copytree(run / "export/internvl", folder)
    return folder


def rewrite_line(path: Path, number: int, change) -> None:  # noqa: ANN001 - a small test helper
    lines = path.read_text().splitlines()
    record = json.loads(lines[number - 1])
    change(record)
    lines[number - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def test_meta_rules(run: Path, tmp_path: Path) -> None:
    folder = broken_copy(run, tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["mis_train"]["repeat_time"]
    meta["mis_val"]["annotation"] = "mis_val.json"
    (folder / "meta.json").write_text(json.dumps(meta))
    problems = validate_internvl(folder).problems
    assert "meta.json: mis_train: missing key(s) repeat_time" in problems
    assert any(p.startswith("meta.json: mis_val: annotation 'mis_val.json' must end with .jsonl")
               for p in problems)


def test_turn_and_placeholder_rules(run: Path, tmp_path: Path) -> None:
    folder = broken_copy(run, tmp_path)
    annotation = folder / "mis_train.jsonl"

    def one_placeholder(record: dict) -> None:
        record["conversations"][0]["value"] = record["conversations"][0]["value"].replace("<image>", "", 1)

    def text_not_value(record: dict) -> None:
        record["conversations"][1]["text"] = record["conversations"][1].pop("value")

    def gpt_placeholder(record: dict) -> None:
        record["conversations"][1]["value"] += " <image> <IMG_CONTEXT>"

    def wrong_roles(record: dict) -> None:
        record["conversations"][1]["from"] = "assistant"

    for number, change in ((1, one_placeholder), (2, text_not_value), (3, gpt_placeholder), (4, wrong_roles)):
        rewrite_line(annotation, number, change)
    problems = validate_internvl(folder).problems
    assert "mis_train.jsonl:1: 1 <image> in human turns for 2 images" in problems
    assert any(p.startswith("mis_train.jsonl:2: turn 1: missing string 'value'") for p in problems)
    assert any(p.startswith("mis_train.jsonl:3: turn 1: <image> in a gpt turn") for p in problems)
    assert any(p.startswith("mis_train.jsonl:3: turn 1: contains <IMG_CONTEXT>") for p in problems)
    assert any(p.startswith("mis_train.jsonl:4: turn 1: 'from' is 'assistant'") for p in problems)


def test_image_rules(run: Path, tmp_path: Path) -> None:
    folder = broken_copy(run, tmp_path)
    annotation = folder / "mis_train.jsonl"
    first, second = read_jsonl(annotation)[:2]
    (folder / "images" / first["image"][0]).unlink()
    (folder / "images" / second["image"][1]).write_bytes(b"not a png")
    rewrite_line(annotation, 3, lambda record: record.update(width_list=[1, 2]))
    problems = validate_internvl(folder).problems
    assert any(p.startswith("mis_train.jsonl:1: image not found") for p in problems)
    assert any(p.startswith("mis_train.jsonl:2: image does not open") for p in problems)
    assert any(p.startswith("mis_train.jsonl:3: 'width_list' is [1, 2] but the images measure")
               for p in problems)
    result = run_cli("validate", folder, "--format", "internvl")
    assert result.exit_code == 1
    assert len([line for line in result.output.splitlines() if line.startswith("mis_train.jsonl:")]) == 3


def test_relative_meta_validates_with_a_warning(run: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """InternVL opens root and annotation from the working folder: fine from here, a warning."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", run / "export/internvl", "--format", "internvl")
    assert result.exit_code == 0, result.output
    folder = (run / "export/internvl").resolve()
    assert result.output.splitlines()[:2] == [
        f"warning: meta.json: mis_train: root and annotation relative: InternVL opens them from the "
        f"folder training starts in, so they resolve only from {folder} (start there, or export "
        "with --absolute-paths)",
        f"warning: meta.json: mis_val: root and annotation relative: InternVL opens them from the "
        f"folder training starts in, so they resolve only from {folder} (start there, or export "
        "with --absolute-paths)"]
    assert result.output.splitlines()[2].startswith("ok: ")


def test_default_export_names_no_run_folder(run: Path) -> None:
    """Relative by default, so the export is the same bytes wherever the run lives."""
    for path in (run / "export/internvl").glob("*.json*"):
        assert str(run.resolve()) not in path.read_text()


def test_absolute_paths_name_the_published_folder(run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    result = run_cli("export", copy, "--format", "internvl", "--absolute-paths")
    assert result.exit_code == 0, result.output
    folder = (copy / "export/internvl").resolve()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["mis_train"]["root"] == f"{folder}/images/"
    assert meta["mis_train"]["annotation"] == f"{folder}/mis_train.jsonl"
    assert meta["mis_val"]["annotation"] == f"{folder}/mis_val.jsonl"
    for entry in meta.values():
        for record in read_jsonl(Path(entry["annotation"])):
            assert all(p.startswith(f"{folder}/images/") and Path(p).is_file() for p in record["image"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_cli("validate", folder / "meta.json", "--format", "internvl")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
