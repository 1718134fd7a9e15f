"""A broken config fails with one line naming the problem, exit code 2, and writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mis_data.core.config import ConfigError
from mis_data.core.prompts import PromptLibrary
from tests.support.cli import run_cli, write_config
from tests.support.paths import CONFIGS, PROMPTS


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


# -- inputs that would build an empty dataset (issue #27 case 8) --------------------------------

PAIR = ("concepts:\n  - {category: Illegal Activity, sub_category: Property Crimes, object1: crowbar,"
        " kind1: tool, object2: jewelry store, kind2: place}\n")


def _empty_concept_list(tmp: Path) -> tuple[dict, str]:
    (tmp / "concepts").mkdir()
    (tmp / "concepts/a.yaml").write_text(PAIR)
    (tmp / "concepts/b.yaml").write_text("concepts: []\n")
    return ({"concepts": {"sources": [{"kind": "shipped", "path": str(tmp / "concepts")}]}},
            f"{tmp / 'concepts/b.yaml'}: the 'concepts' list is empty")


def _empty_query_file(tmp: Path) -> tuple[dict, str]:
    (tmp / "queries.jsonl").write_text('\n{"query": "  "}\n')
    return ({"concepts": {"sources": [{"kind": "queries_file", "path": str(tmp / "queries.jsonl")}]}},
            f"{tmp / 'queries.jsonl'}: no query in this file")


def _empty_image_folder(tmp: Path) -> tuple[dict, str]:
    (tmp / "unsafe").mkdir()
    (tmp / "unsafe/readme.txt").write_text("no images")
    return ({"concepts": {"sources": [{"kind": "image_folder", "path": str(tmp / "unsafe")}]}},
            f"{tmp / 'unsafe'}: no images in this concept folder")


def _everything_filtered(tmp: Path) -> tuple[dict, str]:
    (tmp / "pairs.yaml").write_text(PAIR)
    return ({"concepts": {"sources": [{"kind": "shipped", "path": str(tmp / "pairs.yaml")}],
                          "sub_categories": ["Cybercrime"]}},
            f"{tmp / 'pairs.yaml'}: no concept pair is left to build from")


def _empty_prompt_file(tmp: Path) -> tuple[dict, str]:
    shutil.copytree(PROMPTS, tmp / "prompts")
    (tmp / "prompts/label.md").write_text("\n")
    return {"prompts_dir": str(tmp / "prompts")}, f"{tmp / 'prompts/label.md'}: prompt file is empty"


EMPTY_INPUTS = {
    "a shipped file whose concepts list is empty": _empty_concept_list,
    "a query file with no query": _empty_query_file,
    "an image folder with no image": _empty_image_folder,
    "a source whose every entry is filtered out": _everything_filtered,
    "an empty prompt file": _empty_prompt_file,
}


@pytest.mark.parametrize("case", sorted(EMPTY_INPUTS))
def test_inputs_that_would_build_nothing_are_config_errors_in_build_and_plan(
        tmp_path: Path, case: str) -> None:
    overrides, expected = EMPTY_INPUTS[case](tmp_path)
    config = write_config(tmp_path, **overrides)
    assert_one_line_error(tmp_path, config, expected)
    plan = run_cli("plan", "--config", config)
    assert plan.exit_code == 2, plan.output
    lines = plan.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), plan.output


def test_an_empty_prompt_file_is_refused_when_it_is_read(tmp_path: Path) -> None:
    """Also outside a build (the eval's judge prompt): never an empty request."""
    (tmp_path / "eval_judge.md").write_text("  \n")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'eval_judge.md'}: prompt file is empty"):
        PromptLibrary(tmp_path).get("eval_judge.md")
