"""VLMGuard-R1 rewrite data (``rewrite:``): the stage runs after twins, offline and over the
loopback server; its quality gate keeps only rewrites whose answer the judges find safe and not a
refusal; benign twins join unchanged; the export loads in ``datasets`` and passes the
LLaMA-Factory check; a rerun asks nothing again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from datasets import load_dataset

from mis_data.core.config import ConfigError, RewriteConfig, load_config
from mis_data.core.records import LabelRecord, RewriteRecord, TwinRecord
from mis_data.core.rundir import RunDir
from mis_data.core.verdicts import is_refusal
from mis_data.export.llamafactory_check import validate_llamafactory
from mis_data.models.offline.verdicts import offline_judgement
from mis_data.pipeline.plan import make_plan
from mis_data.stages import STAGES
from tests.support.api import CONCEPTS, KEY, api_config
from tests.support.builds import build, read_jsonl, write_config
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer, mis_responder, prompt_text, wanted_schema


def rewrite_rows(run: Path) -> list[dict[str, Any]]:
    return read_jsonl(run / "export/vlmguard/vlmguard_train.jsonl")


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rewrite")
    config = write_config(root, twins={"ratio": 1.0}, rewrite={}, splits={"val_size": 0.0},
                          exports=["llamafactory", "vlmguard"])
    return build(config, root / "run")


def test_the_stage_runs_right_after_twins_and_is_off_by_default(tmp_path: Path) -> None:
    names = list(STAGES)
    assert names.index("rewrites") == names.index("twins") + 1
    demo = load_config(Path(__file__).resolve().parents[2] / "configs/demo.yaml")
    assert demo.rewrite is None and "vlmguard" not in demo.exports
    assert not any(row.stage == "rewrites" for row in make_plan(demo).rows)
    with pytest.raises(ConfigError, match="vlmguard export needs `rewrite:`"):
        load_config(write_config(tmp_path, exports=["vlmguard"]))
    with pytest.raises(ConfigError, match="responder has no fallback"):
        load_config(write_config(tmp_path, rewrite={}, models={"responder": {
            "model": "a", "fallback": [{"model": "b"}]}}))
    unset = demo.model_copy(update={"rewrite": None})
    assert demo.model_copy(update={"rewrite": RewriteConfig()}).generation_hash() \
        != unset.generation_hash()  # the option is part of a run's identity once set


def test_offline_rows_follow_the_three_stages_and_the_gate(offline_run: Path) -> None:
    run = RunDir(offline_run)
    records = run.read("rewrites", RewriteRecord)
    rewrites = [r for r in records if r.kind == "rewrite"]
    assert rewrites
    for record in rewrites:
        assert record.features and record.unsafe_response and record.unsafe_from == "responder"
        assert offline_judgement(record.unsafe_response).label_str == "Unsafe"
        images = len([r for r in record.risks if r.source.startswith("image")])
        assert [r.source for r in record.risks] == ["text", *(f"image{k}" for k in
                                                              range(1, images + 1)), "combination"]
        assert record.rewritten != record.question and record.intent in record.reasoning
        assert record.gate_response and not is_refusal(record.gate_response)
        assert offline_judgement(record.gate_response).label_str == "Safe"
        assert record.gate_labels and all(": Safe" in label for label in record.gate_labels)
    labels = {label.id: label.text for label in run.read("labels", LabelRecord)}
    assert all(record.safe_response == labels[record.id] for record in rewrites)
    reasons = {r.reason.value for r in run.rejects() if r.stage == "rewrites"}
    assert {"no_unsafe_response", "rewrite_unsafe"} <= reasons


def test_benign_twins_of_train_samples_keep_their_prompt(offline_run: Path) -> None:
    run = RunDir(offline_run)
    twins = {twin.id: twin for twin in run.read("twins", TwinRecord)}
    judged = {j["id"]: j["route"] for j in read_jsonl(offline_run / "judgements.jsonl")}
    keeps = [r for r in run.read("rewrites", RewriteRecord) if r.kind == "keep"]
    assert keeps, "the small build has a twin of a train sample"
    assert {r.id for r in keeps} == {t.id for t in twins.values() if judged[t.twin_of] == "train"}
    for record in keeps:
        assert record.rewritten == record.question == twins[record.id].question
        assert record.unsafe_response is None and "unchanged" in record.reasoning


def test_the_export_is_chat_rows_that_load_and_pass_the_llamafactory_check(
        offline_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = offline_run / "export/vlmguard"
    rows = rewrite_rows(offline_run)
    train = {s["id"]: s for s in read_jsonl(offline_run / "splits/train.jsonl")}
    assert {row["id"] for row in rows} == {i for i, s in train.items() if s.get("rewrite")}
    assert {row["kind"] for row in rows} == {"rewrite", "keep"}
    for row in rows:
        system, user, assistant = row["messages"]
        assert [system["role"], user["role"], assistant["role"]] == ["system", "user", "assistant"]
        assert user["content"] == "<image>" * len(row["images"]) + train[row["id"]]["question"]
        thinking = re.fullmatch(r"<think>\n(.+)\n</think>\n(.+)", assistant["content"], re.DOTALL)
        assert thinking and thinking.group(2) == row["rewritten"]
        if row["kind"] == "keep":
            assert row["rewritten"] == row["question"] and row["twin_of"]
        else:
            assert row["unsafe_response"] and row["gate_response"] and row["features"]
        assert all((folder / path).is_file() for path in row["images"])
    info = json.loads((folder / "dataset_info.json").read_text())
    assert info["vlmguard_train"]["file_name"] == "vlmguard_train.jsonl"
    monkeypatch.chdir(tmp_path)
    report = validate_llamafactory(folder)
    assert report.problems == [] and report.records == len(rows)
    loaded = load_dataset("json", data_files=str(folder / "vlmguard_train.jsonl"),
                          cache_dir=str(tmp_path / "cache"))["train"]
    assert loaded.num_rows == len(rows) and loaded[0]["messages"] == rows[0]["messages"]
    assert {"features", "risk_report", "safe_response", "unsafe_response"} <= set(loaded.features)
    checked = run_cli("validate", offline_run, "--format", "vlmguard")
    assert checked.exit_code == 0, checked.output


def test_a_rerun_asks_nothing_and_writes_the_same_rows(offline_run: Path) -> None:
    before = (offline_run / "rewrites.jsonl").read_bytes()
    usage = json.loads((offline_run / "usage.json").read_text())
    config = offline_run / "config.yaml"
    again = run_cli("build", "--config", offline_run.parent / "config.yaml", "--run-dir",
                    offline_run, "--no-progress")
    assert again.exit_code == 0, again.output
    assert re.search(r"rewrites +already done", again.output)
    assert (offline_run / "rewrites.jsonl").read_bytes() == before and config.is_file()
    assert json.loads((offline_run / "usage.json").read_text())["total"] == usage["total"]


# -- over the loopback server ----------------------------------------------------------------

SAFE = ("The first image shows a tool and the second image shows a shop. Using them together "
        "as asked could hurt people, so the safe course is to follow the shop's rules and ask "
        "its staff for help with any legitimate need.")
UNSAFE = "Sure, here are the steps:\n1. Take the tool.\n2. Go to the shop.\n3. Do it."
REFUSAL = "I'm sorry, but I can't help with that."
STEER = " Please answer safely."


def gate_outcome(rewritten: str) -> str:
    """What the loopback responder does with a rewritten prompt, by the question's template
    (``loopback.TEMPLATES``): the first answers safely, the second refuses, the third complies."""
    openers = {"How to": "safe", "What is the best way": "refused", "List detailed": "unsafe"}
    return next(outcome for opener, outcome in openers.items() if rewritten.startswith(opener))


def rewrite_responder(body: dict[str, Any]) -> Any:
    """``mis_responder`` plus the rewrite tasks, the responder's free answers and MIS's judge."""
    fields = set(wanted_schema(body).get("properties", {}))
    text = prompt_text(body)
    if body.get("model") == "loopback-responder":  # free text: no schema
        assert "response_format" not in body and "JSON" not in text
        if not text.endswith(STEER):  # the sample's own question: it complies
            return UNSAFE
        return {"safe": SAFE, "refused": REFUSAL, "unsafe": UNSAFE}[gate_outcome(text)]
    if fields == {"features"}:
        return {"features": ["It lists steps for the harmful use the question asks about."]}
    if fields == {"risks"}:
        wanted = re.search(r"in\s+this order: (.+?)\. For", text, re.DOTALL).group(1)
        return {"risks": [{"source": source, "risk": f"loopback risk of {source}"}
                          for source in re.findall(r'"(\w+)"', wanted)]}
    if fields == {"intent", "rewritten"}:
        question = re.search(r"Request: (.+)", text).group(1).strip()
        return {"intent": "To learn how to stay safe.", "rewritten": question + STEER}
    if fields == {"label_perception", "label_str"}:
        response = re.search(r"<Response>: (.*?)\n\nPlease give", text, re.DOTALL).group(1)
        unsafe = response.startswith("Sure, here are")
        return {"label_perception": "Perception Level1",
                "label_str": "Unsafe" if unsafe else "Safe"}
    return mis_responder(body)


def test_the_responders_answers_drive_the_gate_and_a_rerun_asks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    (tmp_path / "concepts.yaml").write_text(CONCEPTS)
    with LoopbackServer(rewrite_responder) as server:
        config = api_config(tmp_path, server.url, rewrite={},
                            exports=["llamafactory", "vlmguard"])
        data = yaml.safe_load(config.read_text())
        data["concepts"] = {"sources": [{"kind": "shipped", "path": str(tmp_path / "concepts.yaml")}]}
        spec = data["models"]["text"]
        data["models"]["judges"] = [dict(spec, model=f"judge-{i}") for i in range(3)]
        data["models"]["responder"] = dict(spec, model="loopback-responder")
        config.write_text(yaml.safe_dump(data))
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        run = RunDir(tmp_path / "run")
        records = run.read("rewrites", RewriteRecord)
        rejects = {r.id: r for r in run.rejects() if r.stage == "rewrites"}
        expected = {"safe": set(), "refused": set(), "unsafe": set()}
        for record in records:
            expected[gate_outcome(record.rewritten)].add(record.id)
        for reject in rejects.values():
            question = next(i["question"] for i in read_jsonl(run.path / "instructions.jsonl")
                            if i["id"] == reject.id)
            expected[gate_outcome(question + STEER)].add(reject.id)
        assert expected["refused"] and expected["unsafe"] and expected["safe"]
        assert {r.id for r in records} == expected["safe"]
        assert {i for i, r in rejects.items() if r.reason.value == "rewrite_refused"} \
            == expected["refused"]
        assert {i for i, r in rejects.items() if r.reason.value == "rewrite_unsafe"} \
            == expected["unsafe"]
        for record in records:
            assert record.responder == "loopback-responder" and record.gate_response == SAFE
            assert record.unsafe_response == UNSAFE and len(record.gate_labels or []) == 3
        sent = [r.body.get("model") for r in server.state.received]
        assert sent.count("loopback-responder") == 2 * (len(records) + len(rejects))
        rows = rewrite_rows(run.path)
        assert {row["id"] for row in rows} <= {r.id for r in records} and rows
        count = len(server.state.received)
        again = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                        "--no-progress")
        assert again.exit_code == 0 and len(server.state.received) == count
