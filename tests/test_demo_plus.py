"""configs/demo_plus.yaml: the offline demo with twins and DREAM labels on builds, and every
export passes `mis-data validate` and loads (twins' rows have no risk statements)."""

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
    train = load_dataset(str(run / "export/hf"), "train", cache_dir=str(tmp_path / "c"))["train"]
    twins = [row for row in train if row["twin_of"]]
    assert twins and all(not row["risks"] for row in twins)
    assert all(row["risks"] for row in train if not row["twin_of"])
