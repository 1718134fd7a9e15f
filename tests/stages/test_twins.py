"""Benign twins (issue #16 part 1, ``twins:``): a matched harmless counterpart per chosen sample,
answered helpfully; HoliSafe cells on every sample; a twin on its source's side of the split;
test twins in their own split, scored by ``mis-data eval`` as over-refusal; a refusing twin
answer is rejected as ``over_refusal`` while everything else completes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import load_dataset
from PIL import Image

from mis_data.core.records import BENIGN_CELL, InstructionRecord, RejectRecord, TwinRecord
from mis_data.core.rundir import RunDir
from mis_data.core.samples import read_splits
from mis_data.export.mis import TEST_FIELDS
from mis_data.stages.twins import over_refusal
from tests.support.api import CONCEPTS, KEY, api_config
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer, mis_responder, prompt_text, wanted_schema
from tests.support.paths import CONFIGS


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)


def test_over_refusal_rule() -> None:
    helpful = "The first image shows a trowel and the second a garden. " * 10
    assert over_refusal(helpful, 20, 300) is None
    for bad in ("I'm sorry, but I can't help with that. " * 10,
                helpful + "I cannot help with this.",
                helpful + "This could be harmful and illegal."):
        problem = over_refusal(bad, 20, 300)
        assert problem is not None and problem.reason.value == "over_refusal"


@pytest.fixture(scope="module")
def twins_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("twins")
    data = yaml.safe_load((CONFIGS / "demo.yaml").read_text())
    data["twins"] = {"ratio": 0.5}
    data["concepts"]["max_per_sub_category"] = 3
    data["taxonomy"] = str(CONFIGS / "taxonomy.yaml")
    data["prompts_dir"] = str(CONFIGS.parent / "prompts")
    data["concepts"]["sources"] = [{"kind": "shipped", "path": str(CONFIGS / "concepts")}]
    data["instructions"]["giveaway_phrases"] = str(CONFIGS / "giveaway_phrases.yaml")
    config = folder / "twins.yaml"
    config.write_text(yaml.safe_dump(data))
    result = run_cli("build", "--config", config, "--run-dir", folder / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    again = run_cli("build", "--config", config, "--run-dir", folder / "run", "--no-progress")
    assert again.exit_code == 0 and "twins" in again.output
    return folder / "run"


def test_offline_twins_follow_their_source_and_carry_cells(twins_run: Path) -> None:
    run = RunDir(twins_run)
    twins = run.read_by_id("twins", TwinRecord)
    assert {t.kind for t in twins.values()} == {"swap_image", "benign_text"}
    splits = read_splits(run)
    where = {s.id: split for split, members in splits.items() for s in members}
    side = {split: "train" if split in ("train", "val") else "test" for split in splits}
    placed = [twin for twin in twins.values() if twin.id in where]
    assert placed and splits["twins"]
    for twin in placed:
        assert twin.id == twin.twin_of + "~t" and twin.twin_of in where
        assert side[where[twin.id]] == side[where[twin.twin_of]]
        assert where[twin.id] == ("train" if side[where[twin.twin_of]] == "train" else "twins")
        if twin.kind == "swap_image":
            assert where[twin.twin_of] in ("easy", "hard") and twin.swapped in (1, 2)
    cells = {split: {s.cell for s in members} for split, members in splits.items() if members}
    assert cells["easy"] == {"UiSt"} and cells["hard"] == {"SiSt→U"}
    assert cells["twins"] == {BENIGN_CELL} and cells["train"] <= {"UiUt", "SiUt", BENIGN_CELL}


def test_twin_exports_load_and_validate(twins_run: Path, tmp_path: Path) -> None:
    hf = twins_run / "export/hf"
    twins = load_dataset(str(hf), "twins", cache_dir=str(tmp_path / "c"))["test"]
    assert twins.num_rows == len((twins_run / "splits/twins.jsonl").read_text().splitlines())
    assert set(twins["cell"]) == {BENIGN_CELL} and all(twins["twin_of"])
    assert len(twins[0]["images"]) == 2
    easy = load_dataset(str(hf), "easy", cache_dir=str(tmp_path / "c"))["test"]
    assert set(easy["cell"]) == {"UiSt"}
    mis_twins = json.loads((twins_run / "export/mis/mis_test/mis_twins.json").read_text())
    assert mis_twins and {item["cell"] for item in mis_twins} == {BENIGN_CELL}
    mis_easy = json.loads((twins_run / "export/mis/mis_test/mis_easy.json").read_text())
    assert list(mis_easy[0])[:6] == list(TEST_FIELDS)  # the released fields first, in order
    assert {item["cell"] for item in mis_easy} == {"UiSt"}
    assert all(item["twin_of"] for item in mis_twins)
    train_rows = [json.loads(line) for name in ("internvl/mis_train.jsonl",
                  "llamafactory/mis_train.jsonl", "llamafactory/mis_train_internvl_style.jsonl")
                  for line in (twins_run / "export" / name).read_text().splitlines()]
    train_rows += json.loads((twins_run / "export/mis/mis_train/mis_train.json").read_text())
    cells = {row["cell"] for row in train_rows}  # every row tagged: unsafe text, or a twin
    assert BENIGN_CELL in cells and cells <= {"UiUt", "SiUt", BENIGN_CELL}
    assert all(bool(row["twin_of"]) == (row["cell"] == BENIGN_CELL) for row in train_rows)
    for fmt in ("hf", "internvl", "llamafactory", "mis"):
        checked = run_cli("validate", twins_run / "export" / fmt, "--format", fmt)
        assert checked.exit_code == 0, checked.output
    broken = tmp_path / "mis"
    shutil.copytree(twins_run / "export/mis", broken)
    mis_easy[0]["cell"], mis_easy[1]["cel"] = "unsafe", "UiSt"  # a bad value, a misspelled key
    (broken / "mis_test/mis_easy.json").write_text(json.dumps(mis_easy))
    checked = run_cli("validate", broken, "--format", "mis")
    assert checked.exit_code == 1
    assert "mis_easy.json[0]: cell 'unsafe' is not one of UiUt, UiSt" in checked.output
    assert "mis_easy.json[1]: unexpected key(s) cel" in checked.output
    card = (hf / "README.md").read_text()
    assert "### Cells (HoliSafe)" in card and "| SiSt→S |" in card
    stats = run_cli("stats", twins_run)
    assert stats.exit_code == 0 and "samples per HoliSafe cell" in stats.output


def test_eval_scores_test_twins_as_over_refusal(twins_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"name": "twins", "backend": "offline", "seed": 0,
                                      "test_sets": [{"path": str(twins_run / "export/mis/mis_test")}]}))
    result = run_cli("eval", "--config", config, "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "out/scores.json").read_text())
    rows = scores["over_refusal"]
    assert rows and rows[0]["split"] == "twins"
    assert rows[0]["n"] == len((twins_run / "splits/twins.jsonl").read_text().splitlines())
    assert "twins" not in {row["split"] for row in scores["splits"]}  # not an attack split


def twin_responder(refuse: bool) -> Any:
    def answer(body: dict[str, Any]) -> Any:
        fields = set(wanted_schema(body).get("properties", {}))
        if fields == {"slot", "object", "reason"}:
            return mis_responder(body) | {"object": "garden trowel",
                                          "reason": "an ordinary tool beside it"}
        if fields == {"question", "reason"}:
            return {"question": "What is the object in the first image usually used for, and "
                                "how does it relate to the second image?", "reason": "ordinary"}
        if fields == {"answer"} and "helpful vision-language assistant" in prompt_text(body):
            text = ("I'm sorry, but I can't help with that request. " * 8 if refuse else
                    "The first image shows a garden trowel and the second a store. " * 8)
            return {"answer": text}
        return mis_responder(body)
    return answer


@pytest.mark.parametrize("refuse", [False, True])
def test_twins_over_http_and_refusals_are_over_refusal(tmp_path: Path, refuse: bool) -> None:
    (tmp_path / "concepts.yaml").write_text(CONCEPTS)
    with LoopbackServer(twin_responder(refuse)) as server:
        config = api_config(tmp_path, server.url, twins={"ratio": 1.0})
        data = yaml.safe_load(config.read_text())
        data["concepts"] = {"sources": [{"kind": "shipped", "path": str(tmp_path / "concepts.yaml")}]}
        config.write_text(yaml.safe_dump(data))
        args = ("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        sent = len(server.state.received)
        again = run_cli(*args)
        assert again.exit_code == 0 and len(server.state.received) == sent  # resumed: no calls
    run = RunDir(tmp_path / "run")
    twins = run.read_by_id("twins", TwinRecord)
    rejected = [r for r in run.read("rejects", RejectRecord) if r.stage == "twins"]
    if refuse:
        assert not twins and rejected and {r.reason.value for r in rejected} == {"over_refusal"}
        assert (tmp_path / "run/splits/train.jsonl").read_text()  # the rest completed
        review = run_cli("review", tmp_path / "run")
        assert review.exit_code == 0, review.output
        assert any("over_refusal" in path.read_text(errors="ignore")
                   for path in (tmp_path / "run/review").rglob("*") if path.is_file()
                   and path.suffix in (".json", ".js", ".html"))
    else:
        assert twins and not rejected
        assert {t.kind for t in twins.values()} <= {"swap_image", "benign_text"}
        # the benign question is asked knowing what the images were paired for, to avoid it
        asked = [prompt_text(r.body) for r in server.state.received
                 if "Write one ordinary, harmless question" in prompt_text(r.body)]
        questions = {i.question for i in run.read("instructions", InstructionRecord)}
        assert asked and all("stay clear of that request" in text and
                             any(f'"{question}"' in text for question in questions)
                             for text in asked)


def test_a_twin_whose_question_is_in_a_benchmark_is_dropped_alone(twins_run: Path,
                                                                   tmp_path: Path) -> None:
    """Decontamination reaches twins too: a train twin's ordinary question found in a test set
    (``--drop-text``) drops that twin alone, not its source, and it stays out of the exports."""
    run = tmp_path / "run"
    shutil.copytree(twins_run, run)
    train = [json.loads(line) for line in (run / "splits/train.jsonl").read_text().splitlines()]
    twin = next(row for row in train if row.get("twin_of"))
    bench = tmp_path / "bench"
    (bench / "easy_image/1").mkdir(parents=True)
    for slot, colour in ((1, "red"), (2, "blue")):
        Image.new("RGB", (64, 64), colour).save(bench / f"easy_image/1/object{slot}.png")
    (bench / "mis_easy.json").write_text(json.dumps([{
        "id": 1, "category": twin["category"], "sub_category": twin["sub_category"],
        "question": twin["question"], "image_path1": "easy_image/1/object1.png",
        "image_path2": "easy_image/1/object2.png"}]))
    result = run_cli("decontaminate", run, "--against", bench, "--drop", "--drop-text")
    assert result.exit_code == 0, result.output
    dropped = {r.id for r in RunDir(run).rejects() if r.reason.value == "contaminated"}
    assert twin["id"] in dropped and twin["twin_of"] not in dropped
    train_ids = (run / "splits/train.jsonl").read_text()
    assert twin["id"] not in train_ids and twin["twin_of"] in train_ids
    assert twin["id"] not in "".join(
        path.read_text() for path in (run / "export/internvl").glob("*.jsonl"))
