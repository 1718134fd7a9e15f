"""The run folder survives crashes: partial lines are ignored and cut, rejects resolve."""

from __future__ import annotations

from pathlib import Path

from mis_data.records import LabelRecord, RejectReason, RejectRecord
from mis_data.rundir import RunDir, write_text_atomic


def label(item_id: str) -> LabelRecord:
    return LabelRecord(id=item_id, text="The first image shows ...", model="m", prompt_sha256="x")


def test_partial_last_line_is_ignored_then_cut(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a"), label("b")])
    run.close()
    with open(run.stage_file("labels"), "a") as handle:
        handle.write('{"id": "c", "text": "half')
    assert [r.id for r in run.read("labels", LabelRecord)] == ["a", "b"]
    run.append("labels", [label("d")])
    run.close()
    assert [r.id for r in run.read("labels", LabelRecord)] == ["a", "b", "d"]
    assert run.stage_file("labels").read_text().count("\n") == 3


def test_a_redone_id_keeps_its_latest_record(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    newer = LabelRecord(id="a", text="The first image shows a newer answer", model="m",
                        prompt_sha256="x")
    run.append("labels", [label("a"), label("b"), newer])
    run.close()
    assert run.read("labels", LabelRecord) == [newer, label("b")]


def test_done_ids_include_final_rejects_but_not_retryable_ones(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a")])
    run.reject(RejectRecord(stage="labels", id="b", reason=RejectReason.refused))
    run.reject(RejectRecord(stage="labels", id="c", reason=RejectReason.api_error))
    run.close()
    assert run.done_ids("labels") == {"a", "b"}


def test_a_retried_item_that_succeeds_is_no_longer_a_reject(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.reject(RejectRecord(stage="labels", id="c", reason=RejectReason.api_error))
    run.append("labels", [label("c")])
    run.close()
    assert run.rejects() == []


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "x" / "f.json", "{}")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.json"]
