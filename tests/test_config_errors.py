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
