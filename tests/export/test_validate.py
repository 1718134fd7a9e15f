"""``mis-data validate``: every export passes; problems are one located line each; exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.builds import run_cli, shared_run, taxonomy_path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.mark.parametrize("fmt", ["mis", "internvl", "llamafactory", "hf"])
def test_every_export_of_a_run_validates(run: Path, fmt: str) -> None:
    taxonomy = taxonomy_path(run.parent / "config.yaml")
    result = run_cli("validate", run, "--format", fmt, "--taxonomy", taxonomy)  # a run folder works
    assert result.exit_code == 0, result.output
    count = int(result.output.split("ok: ")[1].split()[0])
    assert count > 0


def test_format_is_guessed_from_the_folder(run: Path) -> None:
    result = run_cli("validate", run / "export/llamafactory")
    assert result.exit_code == 0 and "(llamafactory)" in result.output


def test_every_problem_is_listed_one_per_line_with_exit_1(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "internvl"
    shutil.copytree(run / "export/internvl", folder)
    lines = (folder / "mis_train.jsonl").read_text().splitlines()
    lines[0] = "{not json"
    broken = json.loads(lines[1])
    broken["image"] = []
    lines[1] = json.dumps(broken)
    (folder / "mis_train.jsonl").write_text("\n".join(lines) + "\n")
    result = run_cli("validate", folder, "--format", "internvl")
    assert result.exit_code == 1
    output = result.output.splitlines()
    assert output[0].startswith("mis_train.jsonl:1: not valid JSON")
    assert output[1] == "mis_train.jsonl:2: 'image' must be a non-empty list of paths"
    assert output[2] == "mis_train.jsonl:2: 2 <image> in human turns for 0 images"
    assert output[3] == "mis_train.jsonl:2: 'width_list' must list one size per image (0)"
    assert not any(line.startswith("ok:") for line in output)


def test_unknown_format_is_a_one_line_error(run: Path) -> None:
    result = run_cli("validate", run / "export/mis", "--format", "parquet")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --format 'parquet': expected one of mis, internvl, llamafactory, hf, vlmguard, "
        "awareness"]


def test_export_rejects_unknown_formats_and_writes_the_named_ones(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert run_cli("export", copy, "--format", "mis,nope").exit_code == 2
    shutil.rmtree(copy / "export/llamafactory")
    result = run_cli("export", copy, "--format", "llamafactory")
    assert result.exit_code == 0, result.output
    manifest = json.loads((copy / "manifest.json").read_text())
    assert any(name.startswith("llamafactory/") for name in manifest["exported_files"])
    assert (copy / "export/llamafactory/dataset_info.json").is_file()
