"""Reading test sets: the released MIS layout, a build's MIS export and its HF export.

``write_layout`` (``tests/support/eval_layout.py``) makes a folder in the exact shape of MIS's
released ``mis_test/``; these tests check that shape and read it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mis_data.core.taxonomy import load_taxonomy
from mis_data.eval.config import TestSetSpec
from mis_data.eval.testsets import ingest, read_test_set
from mis_data.export.mis_check import validate_mis
from mis_data.images.store import ImageStore
from mis_data.pipeline.decontaminate import read_hf, read_mis
from mis_data.starter import shipped_path
from tests.support.cli import run_cli
from tests.support.eval_layout import KEY_ENV, RELEASED, eval_config, write_layout


def test_the_fixture_has_the_released_shape(tmp_path: Path) -> None:
    root = write_layout(tmp_path, RELEASED)
    report = validate_mis(root, load_taxonomy(shipped_path("configs", "taxonomy.yaml")))
    assert report.ok, report.problems
    assert set(json.loads((root / "mis_easy.json").read_text())[0]) == {
        "id", "category", "sub_category", "question", "image_path1", "image_path2"}


def test_released_layout_evaluated_end_to_end(tmp_path: Path) -> None:
    """Given the folder holding mis_test/ (as a clone of the release is), every split is read,
    every image stored once, and each item answered, judged and counted."""
    write_layout(tmp_path / "MIS", RELEASED)
    config = eval_config(tmp_path, [{"path": str(tmp_path / "MIS"), "name": "mis"}])
    result = run_cli("eval", "--config", config, "--no-progress")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "out/scores.json").read_text())
    assert [(r["split"], r["n"], r["judged"]) for r in scores["splits"]] == [
        ("easy", 2, 2), ("hard", 1, 1), ("real", 1, 1)]
    assert scores["test_sets"] == [{"name": "mis", "path": str(tmp_path / "MIS"), "format": "mis",
                                    "splits": ["easy", "hard", "real", "twins"]}]
    assert len(list((tmp_path / "out/images").rglob("*.png"))) == 8
    lines = [json.loads(line) for line in (tmp_path / "out/responses.jsonl").read_text().splitlines()]
    assert {line["key"] for line in lines} == {"mis/easy/1", "mis/easy/2", "mis/hard/1", "mis/real/1"}
    assert {line["image_path2"] for line in lines} >= {"easy_image/1/object2.jpg"}
    assert all(line["backend"] == "offline" and line["model"] == "offline" for line in lines)
    assert "OFFLINE" in result.output and (tmp_path / "out/scores.png").stat().st_size > 1000


def test_a_builds_mis_and_hf_exports_read_the_same(demo_run: Path, tmp_path: Path) -> None:
    """The HF export (configs easy/hard/real, split test, images embedded) gives the same items
    and the same stored images as the MIS export of the same build; decontaminate reads both
    through the same readers."""
    store = ImageStore(tmp_path / "images")
    mis = ingest([TestSetSpec(path=demo_run / "export/mis/mis_test", name="x")], store)
    hf = ingest([TestSetSpec(path=demo_run / "export/hf", name="x")], store)
    assert [e.item for e in mis] == [e.item for e in hf]
    assert [e.images for e in mis] == [e.images for e in hf] and all(e.images for e in mis)
    benchmark_images = [name for name, data, _, _ in read_hf(str(demo_run / "export/hf")) if data]
    assert len(benchmark_images) >= 2 * len(hf)  # test configs plus the train config
    mis_images = [name for name, data, _, _ in read_mis(demo_run / "export/mis") if data]
    assert len(mis_images) == 2 * len(mis)


def test_limit_and_splits_select_items(tmp_path: Path) -> None:
    write_layout(tmp_path, {"easy": RELEASED["easy"], "hard": RELEASED["hard"]})
    spec = TestSetSpec(path=tmp_path / "mis_test", splits=["easy"], limit=1)
    assert [item.key for item, _ in read_test_set(spec)] == ["mis_test/easy/1"]


def test_a_missing_image_is_an_unanswered_item_not_a_crash(tmp_path: Path) -> None:
    write_layout(tmp_path, {"easy": RELEASED["easy"]}, missing=("e2",))
    entries = ingest([TestSetSpec(path=tmp_path / "mis_test")], ImageStore(tmp_path / "images"))
    assert entries[0].images and entries[1].images is None
    assert entries[1].problem and "image not found" in entries[1].problem


@pytest.mark.parametrize(("change", "message"), [
    ({"judge": {"model": "gpt-4o", "temprature": 0}}, "judge.temprature: unknown key"),
    ({"backend": "openai"}, "needs a model"),
    ({"test_sets": [{"path": "x", "splits": ["medium"]}]}, "test_sets.0.splits.0: Input should be"),
])
def test_config_errors_are_one_line_naming_key_and_file(tmp_path: Path, change: dict[str, Any],
                                                         message: str) -> None:
    config = eval_config(tmp_path, [{"path": str(tmp_path)}])
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | change))
    result = run_cli("eval", "--config", config)
    assert result.exit_code == 2
    assert message in result.output and str(config) in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_key_fails_before_any_file_is_written(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    write_layout(tmp_path, {"easy": RELEASED["easy"]})
    config = eval_config(tmp_path, [{"path": str(tmp_path / "mis_test")}], url="http://127.0.0.1:9/v1")
    result = run_cli("eval", "--config", config)
    assert result.exit_code == 2 and f"{KEY_ENV} is not set" in result.output
    assert not (tmp_path / "out").exists()
