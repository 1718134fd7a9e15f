"""configs/demo_plus.yaml: the offline demo with twins, DREAM labels and three images per sample
builds, and every export passes `mis-data validate` with three images per row and loads (twins'
rows have no risk statements), and decontamination against its own test export finds nothing
in train (the splits keep images apart)."""

from __future__ import annotations

from pathlib import Path

from conftest import CONFIGS, run_cli
from datasets import load_dataset


def test_demo_plus_builds_and_every_export_validates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("build", "--config", CONFIGS / "demo_plus.yaml", "--run-dir", run,
                     "--no-progress", "--yes")
    assert result.exit_code == 0, result.output
    assert (run / "splits/twins.jsonl").read_text().strip()
    for fmt in ("hf", "internvl", "llamafactory", "mis"):
        checked = run_cli("validate", run / "export" / fmt, "--format", fmt)
        assert checked.exit_code == 0, checked.output
        assert "3 images each" in checked.output
    train = load_dataset(str(run / "export/hf"), "train", cache_dir=str(tmp_path / "c"))["train"]
    assert all(len(row["images"]) == 3 for row in train)
    assert all(not row["risks"] for row in train if row["twin_of"])  # a twin has no risks
    assert all(row["risks"] for row in train if not row["twin_of"])
    twins = load_dataset(str(run / "export/hf"), "twins", cache_dir=str(tmp_path / "c"))["test"]
    assert len(twins) and all(row["cell"] == "SiSt→S" and row["twin_of"] and len(row["images"]) == 3
                              for row in twins)
    assert any(risk["source"] == "image3" for row in train for risk in row["risks"] or [])
    cleaned = run_cli("decontaminate", run, "--against", run / "export/mis", "--as", "mis")
    assert cleaned.exit_code == 0, cleaned.output
    report = __import__("json").loads((run / "decontamination.json").read_text())
    assert report["matches"] == [] or all(m["kind"] != "image" for m in report["matches"])
