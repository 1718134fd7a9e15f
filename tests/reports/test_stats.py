"""`stats.write_stats`: the tables agree with the split files, the plot is a real PNG, and the
same run gives the same bytes twice."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mis_data.core.records import RejectReason, RejectRecord
from mis_data.core.rundir import RunDir
from mis_data.core.samples import OPTIONAL_SPLITS, SPLITS
from mis_data.reports.stats import load_reference, plot_panels, read_facts, write_stats
from tests.support.builds import copy_run, read_jsonl, shared_run

REFUSED_SUB = "Identity Theft"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared offline run, plus rejects the offline backend never makes."""
    run = copy_run(shared_run(tmp_path_factory), tmp_path_factory.mktemp("stats") / "run")
    with RunDir(run) as folder:
        folder.reject(RejectRecord(stage="instructions", id="feedface00000001",
                                   reason=RejectReason.refused, detail="I can't help with that.",
                                   sub_category=REFUSED_SUB))
        folder.reject(RejectRecord(stage="labels", id="feedface00000002",
                                   reason=RejectReason.label_apology, detail="Sorry, ...",
                                   sub_category="Weapon-Related Violence"))
    return run


def split_counts(run: Path) -> dict[str, Counter[str]]:
    """Per sub-category and split, read straight from the split files."""
    counts: dict[str, Counter[str]] = {}
    for split in SPLITS:
        path = run / "splits" / f"{split}.jsonl"
        for row in read_jsonl(path) if path.exists() else []:
            counts.setdefault(row["sub_category"], Counter())[split] += 1
    return counts


def table_row(text: str, name: str) -> list[str]:
    """The cells after ``name`` in the first table line that starts with it."""
    for line in text.splitlines():
        if line.strip().startswith(name + " ") and line.strip()[len(name):].split():
            return line.strip()[len(name):].split()
    raise AssertionError(f"no row {name!r} in:\n{text}")


def test_counts_match_the_split_files(run_dir: Path) -> None:
    text = write_stats(run_dir).text
    expected = split_counts(run_dir)
    assert expected, "the shared run should have finished samples"
    for sub, counter in expected.items():
        cells = table_row(text, sub)
        shown = [split for split in SPLITS if split not in OPTIONAL_SPLITS]  # no twins here
        assert cells == [str(counter[split]) for split in shown] + [str(sum(counter.values()))], sub
    total = sum(sum(counter.values()) for counter in expected.values())
    assert table_row(text, "total")[-1] == str(total)
    manifest = json.loads((run_dir / "splits" / "manifest.json").read_text(encoding="utf-8"))
    shown = [split for split in SPLITS if split not in OPTIONAL_SPLITS]
    assert [int(c) for c in table_row(text, "total")[:len(shown)]] == [
        manifest["counts"].get(split, 0) for split in shown]


def test_rejects_refusals_and_offline_usage(run_dir: Path) -> None:
    text = write_stats(run_dir).text
    assert "refused" in table_row(text, "instructions")
    assert table_row(text, "labels") == ["label_apology", "1"]
    # Every question of the sub-category reached the instruction model, plus the refused one.
    sub_ids = {row["id"] for row in read_jsonl(run_dir / "concepts.jsonl")
               if row["sub_category"] == REFUSED_SUB}
    reached = sum(1 for row in read_jsonl(run_dir / "instructions.jsonl")
                  if row["concept_id"] in sub_ids) + 1
    assert reached > 1
    refusal_row = [line for line in text.splitlines() if line.strip().startswith(REFUSED_SUB)][-1]
    assert refusal_row.split()[-3:] == [str(reached), "1", f"{100 / reached:.1f}%"]
    assert "offline backend: no tokens, no cost" in text


def test_online_usage_is_reported(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    row = {"stage": "labels", "model": "gpt-4o", "requests": 3, "cached": 1, "input_tokens": 1200,
           "output_tokens": 345, "images": 0, "cost_usd": 0.0123, "refusals": 0}
    manifest["backend"] = "openai"
    manifest["usage"] = {"sessions": [{"by_stage_model": [row], "total": row}], "total": row}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    text = write_stats(run).text
    assert "1,200 input / 345 output tokens" in text and "$0.0123" in text
    assert "no tokens" not in text


def test_plot_is_a_png_and_output_is_deterministic(run_dir: Path) -> None:
    first = write_stats(run_dir)
    first_bytes = first.plot.read_bytes()
    assert first.plot == run_dir / "stats" / "stats.png"
    with Image.open(first.plot) as image:
        assert image.format == "PNG"
        assert image.width >= 800 and image.height >= 400
        assert sum(1 for n in image.convert("L").histogram() if n) > 10  # drawn on, not blank
    second = write_stats(run_dir)
    assert second.text == first.text
    assert second.plot.read_bytes() == first_bytes


def test_unfinished_run_is_reported(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    shutil.rmtree(run / "splits")
    (run / "manifest.json").unlink()
    result = write_stats(run)
    assert "splits not written yet" in result.text
    assert table_row(result.text, "total") == ["0"] * (len(SPLITS) - len(OPTIONAL_SPLITS) + 1)
    assert result.plot.exists()


def test_every_mis_sub_category_has_a_row_beside_mis_counts(run_dir: Path) -> None:
    text = write_stats(run_dir).text
    reference = load_reference()
    assert len(reference.test_counts) == 14 and sum(reference.test_counts.values()) == 2185
    assert reference.splits == {"train": 3927, "easy": 1675, "hard": 510, "real": 100}
    for sub, mis_count in reference.test_counts.items():
        assert table_row(text, sub)  # in the split table, even with no sample
        share = next(line for line in text.splitlines()
                     if line.strip().startswith(sub) and str(mis_count) in line.split())
        assert f"{100 * mis_count / 2185:.1f}%" in share
    mix = table_row(text, "easy")
    assert mix[-2:] == ["1675", f"{100 * 1675 / 6212:.1f}%"]


def test_reject_rates_per_stage_and_sub_category(run_dir: Path) -> None:
    text = write_stats(run_dir).text
    section = text.split("reject rates per stage")[1].split("\n\n")[0]
    header = next(line for line in section.splitlines() if line.strip().startswith("sub-category"))
    labels = header.split().index("labels") - 1  # table_row gives the cells after the name
    row = table_row(section, "Weapon-Related Violence")
    labelled = sum(1 for row_ in read_jsonl(run_dir / "labels.jsonl")
                   if row_["id"].split("-")[0] in weapon_pairs(run_dir))
    assert row[labels] == f"{100 / (labelled + 1):.1f}%"  # the one label_apology reject


def weapon_pairs(run: Path) -> set[str]:
    return {row["id"] for row in read_jsonl(run / "concepts.jsonl")
            if row["sub_category"] == "Weapon-Related Violence"}


def test_plot_has_no_empty_panel(run_dir: Path, tmp_path: Path) -> None:
    run = copy_run(run_dir, tmp_path / "run")
    assert plot_panels(read_facts(RunDir(run)))[-1] == "rejects"
    (run / "rejects.jsonl").write_text("", encoding="utf-8")
    manifest = json.loads((run / "splits" / "manifest.json").read_text(encoding="utf-8"))
    manifest["excluded_by_reason"] = {}
    (run / "splits" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert plot_panels(read_facts(RunDir(run))) == ["sub_categories", "test_shares", "split_mix"]
    assert write_stats(run).plot.exists()
