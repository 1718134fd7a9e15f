"""The run folder survives crashes: partial lines are ignored and cut, rejects resolve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mis_data.core.records import RETRYABLE_REASONS, LabelRecord, RejectReason, RejectRecord
from mis_data.core.rundir import RunDir, write_text_atomic


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


def done(run: RunDir, stage: str) -> set[str]:
    """What a resumed stage skips before fallbacks are considered (``Stage.done_items``)."""
    return run.output_ids(stage) | {reject.id for reject in run.rejects()
                                    if reject.stage == stage and reject.reason not in RETRYABLE_REASONS}


def test_done_ids_include_final_rejects_but_not_retryable_ones(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a")])
    run.reject(RejectRecord(stage="labels", id="b", reason=RejectReason.refused))
    run.reject(RejectRecord(stage="labels", id="c", reason=RejectReason.api_error))
    run.close()
    assert done(run, "labels") == {"a", "b"}


def test_a_retried_item_that_succeeds_is_no_longer_a_reject(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.reject(RejectRecord(stage="labels", id="c", reason=RejectReason.api_error))
    run.append("labels", [label("c")])
    run.close()
    assert run.rejects() == []


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "x" / "f.json", "{}")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.json"]


def test_a_group_is_one_line_per_record_with_the_continued_ones_marked(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a"), label("b"), label("c")])
    run.close()
    lines = run.stage_file("labels").read_bytes().splitlines(keepends=True)
    assert [line[-2:] for line in lines] == [b" \n", b" \n", b"}\n"]
    assert [r.id for r in run.read("labels", LabelRecord)] == ["a", "b", "c"]


GROUP_OVER_A_LIMIT = """
import errno, resource, sys
from pathlib import Path
from mis_data.core.records import LabelRecord, RejectReason, RejectRecord
from mis_data.core.rundir import RunDir

run = RunDir(Path(sys.argv[1]))
run.append("labels", [LabelRecord(id="a", text="x", model="m", prompt_sha256="x")])
run.append("rejects", [RejectRecord(stage="labels", id=f"r{i}", reason=RejectReason.refused)
                       for i in range(20)])
sizes = {p.name: p.stat().st_size for p in run.path.glob("*.jsonl")}
resource.setrlimit(resource.RLIMIT_FSIZE, (sizes["rejects.jsonl"] + 10,) * 2)
try:
    with run.group():
        run.append("labels", [LabelRecord(id="b", text="y", model="m", prompt_sha256="x")])
        run.reject(RejectRecord(stage="labels", id="c", reason=RejectReason.refused))
except OSError as error:
    assert error.errno == errno.EFBIG and error.filename.endswith("rejects.jsonl"), error
    assert {p.name: p.stat().st_size for p in run.path.glob("*.jsonl")} == sizes
    assert not (run.path / ".group.json").exists()
    print("rolled back")
"""


def test_a_group_cut_by_a_file_size_limit_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    """labels.jsonl takes its line, rejects.jsonl hits the limit: both go back."""
    result = subprocess.run([sys.executable, "-c", GROUP_OVER_A_LIMIT, str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout == "rolled back\n", result.stderr[-2000:]


def test_a_group_killed_between_two_files_is_undone_when_a_writer_resumes(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a")])
    run.reject(RejectRecord(stage="labels", id="z", reason=RejectReason.refused))
    run.close()
    before = {path.name: path.read_bytes() for path in tmp_path.glob("*.jsonl")}
    # What a kill after the labels line and before the reject line leaves: the journal names
    # the sizes before the group, and one file has the group's line.
    (tmp_path / ".group.json").write_text(json.dumps({n: len(b) for n, b in before.items()}))
    with open(run.stage_file("labels"), "ab") as handle:
        handle.write(label("b").model_dump_json().encode() + b"\n")
    assert RunDir(tmp_path).recover() == ["labels.jsonl"]
    assert {path.name: path.read_bytes() for path in tmp_path.glob("*.jsonl")} == before
    assert not (tmp_path / ".group.json").exists()
    assert done(RunDir(tmp_path), "labels") == {"a", "z"}


def test_a_cut_inside_a_multibyte_character_is_a_partial_group(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append("labels", [label("a")])
    run.append("labels", [label("b"), LabelRecord(id="c", text="Das erste Bild zeigt – ü",
                                                  model="m", prompt_sha256="x")])
    run.close()
    path = run.stage_file("labels")
    whole = path.read_bytes()
    path.write_bytes(whole[:whole.index("ü".encode()) + 1])
    assert [r.id for r in RunDir(tmp_path).read("labels", LabelRecord)] == ["a"]
    assert RunDir(tmp_path).recover() == ["labels.jsonl"]
    assert path.read_bytes() == whole[:whole.index(b"\n") + 1]


def test_a_reject_decided_again_one_level_down_is_no_longer_current(tmp_path: Path) -> None:
    """A pair refused, then (a fallback added) its questions rejected: the questions speak."""
    with RunDir(tmp_path) as run:
        run.reject(RejectRecord(stage="instructions", id="p", reason=RejectReason.refused))
        run.reject(RejectRecord(stage="instructions", id="p-1", reason=RejectReason.object_leak))
        run.reject(RejectRecord(stage="images", id="q", reason=RejectReason.blocked))
    again = RunDir(tmp_path)
    assert {(r.id, r.reason.value) for r in again.rejects()} == {("p-1", "object_leak"),
                                                                  ("q", "blocked")}
    with RunDir(tmp_path) as run:  # a later word on the pair itself is current again
        run.reject(RejectRecord(stage="instructions", id="p", reason=RejectReason.refused))
    assert {r.id for r in RunDir(tmp_path).rejects()} == {"p", "p-1", "q"}
