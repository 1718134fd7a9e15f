"""A broken config fails with one line naming the problem, exit code 2, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIGS, run_cli, write_config


def assert_one_line_error(tmp_path: Path, config: Path, *expected: str) -> None:
    run_dir = tmp_path / "run"
    result = run_cli("build", "--config", config, "--run-dir", run_dir, "--no-progress")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.output
    assert not run_dir.exists()


def test_misspelled_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, concepts={"sources": [{"kind": "shipped", "path": str(
        CONFIGS / "concepts")}], "max_per_subcategory": 2})
    assert_one_line_error(tmp_path, config, "concepts.max_per_subcategory", "unknown key",
                          str(config))


def test_wrong_type(tmp_path: Path) -> None:
    config = write_config(tmp_path, seed="zero")
    assert_one_line_error(tmp_path, config, "seed", str(config))


def test_unknown_sub_category(tmp_path: Path) -> None:
    config = write_config(tmp_path, concepts={
        "sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
        "sub_categories": ["Property Crimes", "Space Piracy"]})
    assert_one_line_error(tmp_path, config, "Space Piracy")


def test_missing_concept_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "concepts.yaml"
    config = write_config(tmp_path, concepts={"sources": [{"kind": "shipped",
                                                           "path": str(missing)}]})
    assert_one_line_error(tmp_path, config, str(missing), "not found")


def test_broken_yaml(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("name: demo\nconcepts: [unclosed\n", encoding="utf-8")
    assert_one_line_error(tmp_path, config, "invalid YAML", "line")


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path, tmp_path / "absent.yaml", "file not found")


def test_openai_backend_without_key_never_falls_back(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIS_TEST_KEY", raising=False)
    config = write_config(tmp_path, backend="openai", models={
        "text": {"model": "m", "api_key_env": "MIS_TEST_KEY"},
        "vision": {"model": "m", "api_key_env": "MIS_TEST_KEY"},
        "judges": [{"model": "m", "api_key_env": "MIS_TEST_KEY"}],
        "image": {"model": "m", "api_key_env": "MIS_TEST_KEY"}})
    assert_one_line_error(tmp_path, config, "MIS_TEST_KEY")


def _queries_csv_without_column(tmp_path: Path) -> dict:
    queries = tmp_path / "queries.csv"
    queries.write_text("prompt,source\nHow to pick a lock,bench\n")
    return {"concepts": {"sources": [{"kind": "queries_file", "path": str(queries)}]}}


def _image_dataset_without_label_column(tmp_path: Path) -> dict:
    data = tmp_path / "pool"
    data.mkdir()
    (data / "train.jsonl").write_text('{"caption": "a crowbar"}\n')
    return {"images": {"source": "hf_dataset", "hf_dataset": str(data)}}


BROKEN_OUTSIDE_INPUTS = {
    "hf image source without a dataset": (
        lambda tmp: {"images": {"source": "hf_dataset"}}, "images.hf_dataset is not set"),
    "folder image source without a folder": (
        lambda tmp: {"images": {"source": "folder"}}, "images.folder is not set"),
    "folder image source with a missing folder": (
        lambda tmp: {"images": {"source": "folder", "folder": str(tmp / "absent")}}, "not found"),
    "image dataset without the label column": (_image_dataset_without_label_column, "no column"),
    "query csv without the column": (_queries_csv_without_column, "no column 'query'"),
    "real pool that names nothing": (lambda tmp: {"real": {"count": 5}}, "real needs a folder"),
    "real pool with a missing folder": (
        lambda tmp: {"real": {"folder": str(tmp / "photos")}}, "not found"),
    "general mix with a missing file": (
        lambda tmp: {"general": {"path": str(tmp / "general.jsonl")}}, "general data file"),
    "missing giveaway phrases": (
        lambda tmp: {"instructions": {"giveaway_phrases": str(tmp / "none.yaml")}}, "not found"),
    "missing prompts folder": (lambda tmp: {"prompts_dir": str(tmp / "noprompts")}, "prompts"),
    "missing kinds file": (lambda tmp: {"kinds": str(tmp / "kinds.yaml")}, "kinds.yaml"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_OUTSIDE_INPUTS))
def test_every_broken_input_fails_before_writing_anything(tmp_path: Path, case: str) -> None:
    """Checked in one place (pydantic validators, then preflight): the run folder stays empty."""
    overrides, expected = BROKEN_OUTSIDE_INPUTS[case]
    config = write_config(tmp_path, **overrides(tmp_path))
    assert_one_line_error(tmp_path, config, expected)
