"""configs/demo_plus.yaml: the offline demo with twins, DREAM labels, three images per sample and
rewrite data builds, and every export passes `mis-data validate` with three images per row and
loads (twins' rows have no risk statements; rewrite rows think before they rewrite); its
decontamination step drops exactly the train samples whose images benchmarks/demo_overlap
copied (one exact, one re-encoded), and a check against its own test export finds nothing in
train (the splits keep images apart)."""

from __future__ import annotations

import re
from pathlib import Path

from datasets import load_dataset

from mis_data.core.rundir import RunDir
from tests.support.builds import read_jsonl
from tests.support.cli import run_cli
from tests.support.paths import CONFIGS

COPIED_INTO_THE_BENCHMARK = {"bicycle parking garage", "electronics shop checkout"}


def test_demo_plus_builds_and_every_export_validates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("build", "--config", CONFIGS / "demo_plus.yaml", "--run-dir", run,
                     "--no-progress", "--yes")
    assert result.exit_code == 0, result.output
    assert (run / "splits/twins.jsonl").read_text().strip()
    for fmt in ("hf", "internvl", "llamafactory", "mis", "vlmguard"):
        checked = run_cli("validate", run / "export" / fmt, "--format", fmt)
        assert checked.exit_code == 0, checked.output
        assert "3 images each" in checked.output
    rewrites = load_dataset("json", data_files=str(run / "export/vlmguard/vlmguard_train.jsonl"),
                            cache_dir=str(tmp_path / "c"))["train"]  # rewrite: (VLMGuard-R1)
    assert rewrites.num_rows and all(row["messages"][2]["content"].startswith("<think>\n")
                                     for row in rewrites)
    # a rewrite passed the gate; a kept twin asks no model (its reasoning is the judges' votes)
    assert all(row["gate_response"] for row in rewrites if row["kind"] == "rewrite")
    assert all(row["rewritten"] == row["question"] and row["id"].endswith("~t")
               for row in rewrites if row["kind"] == "keep")
    train = load_dataset(str(run / "export/hf"), "train", cache_dir=str(tmp_path / "c"))["train"]
    assert all(len(row["images"]) == 3 for row in train)
    assert all(not row["risks"] for row in train if row["twin_of"])  # a twin has no risks
    assert all(row["risks"] for row in train if not row["twin_of"])
    twins = load_dataset(str(run / "export/hf"), "twins", cache_dir=str(tmp_path / "c"))["test"]
    assert len(twins) and all(row["cell"] == "SiSt→S" and row["twin_of"] and len(row["images"]) == 3
                              for row in twins)
    assert any(risk["source"] == "image3" for row in train for risk in row["risks"] or [])
    shows_a_copy = {c["id"] for c in read_jsonl(run / "concepts.jsonl")
                    if COPIED_INTO_THE_BENCHMARK & {c[f"object{k}"] for k in (1, 2, 3)}}
    expected = {j["id"] for j in read_jsonl(run / "judgements.jsonl")
                if j["route"] == "train" and j["id"].rsplit("-", 1)[0] in shows_a_copy}
    dropped = {r.id for r in RunDir(run).rejects() if r.reason.value == "contaminated"}
    twin_of = {t["id"]: t["twin_of"] for t in read_jsonl(run / "twins.jsonl")}
    assert expected and {i for i in dropped if i not in twin_of} == expected
    assert all(twin_of[i] in expected for i in dropped if i in twin_of)  # a twin shares images
    assert not {row["id"] for row in train} & dropped
    assert "| demo_overlap | mis | 6 | 0 | 6 |" in (run / "export/hf/README.md").read_text()
    stats = run_cli("stats", run)
    assert stats.exit_code == 0 and re.search(r"decontamination +contaminated +6\n", stats.output)
    info = run_cli("info", run)
    assert info.exit_code == 0 and re.search(r"decontamination +contaminated +6\n", info.output)
    plan = run_cli("plan", "--config", CONFIGS / "demo_plus.yaml")
    assert plan.exit_code == 0 and "decontamination against 1 benchmark(s) asks no model" in plan.output
    cleaned = run_cli("decontaminate", run, "--against", run / "export/mis", "--as", "mis")
    assert cleaned.exit_code == 0, cleaned.output
    assert "0 image matches" in cleaned.output
