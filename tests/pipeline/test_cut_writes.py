"""A write cut anywhere (a file-size limit, a full disk, a kill) loses nothing (issue #27).

What one work item writes is one group: a resume finds it whole or redoes the item. The real
repro runs ``mis-data build`` under ``ulimit -f`` so the kernel cuts instructions.jsonl in the
middle of a pair's questions, then runs the same command again without the limit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mis_data.core.ids import parent_id
from mis_data.core.records import Step
from mis_data.core.rundir import RunDir
from mis_data.pipeline.runner import prepare
from mis_data.stages import STAGES
from mis_data.stages.base import BuildContext, Stage
from tests.support.builds import build, read_jsonl, tree_hashes, write_config
from tests.support.builds import shipped_project as project

MIS_DATA = Path(sys.executable).parent / "mis-data"


def grouped_config(folder: Path) -> Path:
    """Three questions per pair, so a pair's group has three lines to cut between."""
    return write_config(folder, instructions={**project()["instructions"], "per_pair": 3})


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    return build(grouped_config(root), root / "run")


def inside_a_group(path: Path, block: int = 1024) -> int:
    """A ``ulimit -f`` (in blocks) that cuts the file after a pair's first question and before
    its last, past the middle of the file: the cut that used to keep a pair half written."""
    data = path.read_bytes()
    ends, position = [], 0
    for line in data.splitlines(keepends=True):
        position += len(line)
        ends.append(position)
    ids = [row["id"] for row in read_jsonl(path)]
    for limit in range(len(data) // 2 // block, len(data) // block):
        cut = limit * block
        done = sum(1 for end in ends if end <= cut)  # whole lines below the cut
        if 0 < done < len(ids) and parent_id(ids[done - 1]) == parent_id(ids[done]):
            return limit
    raise AssertionError("no block boundary falls inside a group")


def test_a_build_cut_by_a_file_size_limit_resumes_to_the_same_bytes(tmp_path: Path,
                                                                     clean: Path) -> None:
    config = grouped_config(tmp_path)
    limit = inside_a_group(clean / "instructions.jsonl")
    run = tmp_path / "run"
    command = f"{MIS_DATA} build --config {config} --run-dir {run} --no-progress"
    cut = subprocess.run(["bash", "-c", f"ulimit -f {limit}; {command}"], capture_output=True,
                         text=True, timeout=300)
    assert cut.returncode == 1, cut.stderr[-2000:]
    assert cut.stderr.splitlines()[-1] == (
        f"error: OSError: [Errno 27] File too large: '{run / 'instructions.jsonl'}'; finished "
        "work is kept: make room and run the same command again")
    assert (run / "instructions.jsonl").stat().st_size <= limit * 1024
    assert not (run / "export").exists()

    again = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert tree_hashes(run / "export") == tree_hashes(clean / "export")
    assert len(read_jsonl(run / "instructions.jsonl")) == len(read_jsonl(clean / "instructions.jsonl"))


def resumed(config: Path, run_dir: Path) -> BuildContext:
    """A build's context on the folder, as a resume opens it (the lock let go at once)."""
    ctx = prepare(config, run_dir, show_progress=False)
    assert ctx.lock is not None
    ctx.lock.release()
    return ctx


def done_items(ctx: BuildContext, step: Step) -> set[str]:
    """The items a resume of ``step`` counts as done, after the writer's recovery."""
    ctx.run = RunDir(ctx.run.path)
    ctx.run.recover()
    stage = STAGES[step](ctx)
    assert isinstance(stage, Stage)
    return stage.done_items()


def pending_items(ctx: BuildContext, step: Step) -> set[str]:
    """The items a resume of ``step`` would process."""
    stage = STAGES[step](ctx)
    assert isinstance(stage, Stage)
    return {item.id for item in stage.inputs()} - done_items(ctx, step)


def test_a_cut_at_every_byte_of_the_last_group_redoes_exactly_that_item(tmp_path: Path,
                                                                         clean: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(clean, run_dir, ignore=shutil.ignore_patterns("export", "images"))
    path = run_dir / "instructions.jsonl"
    whole = b"".join(path.read_bytes().splitlines(keepends=True)[-12:])  # the last four pairs,
    path.write_bytes(whole)  # so that the 3,000-odd resumes below read little
    ids = [row["id"] for row in read_jsonl(path)]
    last = parent_id(ids[-1])
    assert [parent_id(i) for i in ids[-3:]] == [last] * 3 and parent_id(ids[-4]) != last
    start = len(whole) - len(b"".join(whole.splitlines(keepends=True)[-3:]))
    ctx = resumed(grouped_config(tmp_path), run_dir)
    done = done_items(ctx, Step.instructions)
    assert last in done
    for offset in range(start, len(whole)):
        path.write_bytes(whole[:offset])
        assert done - done_items(ctx, Step.instructions) == {last}, offset
        assert path.read_bytes() == whole[:start], offset  # nothing of the group stays to count


def test_a_run_folder_written_before_groups_resumes_without_redoing_anything(
        tmp_path: Path, clean: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(clean, run_dir)
    shutil.rmtree(run_dir / "export")
    for path in run_dir.glob("*.jsonl"):  # as the code before groups wrote them
        path.write_bytes(path.read_bytes().replace(b" \n", b"\n"))
    config = grouped_config(tmp_path)
    assert pending_items(resumed(config, run_dir), Step.instructions) == set()
    result = subprocess.run([str(MIS_DATA), "build", "--config", str(config),
                             "--run-dir", str(run_dir), "--no-progress"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("instructions", "images", "pairs", "judgements", "labels"):
        assert any(line.startswith(stage) and "already done" in line
                   for line in result.stdout.splitlines()), stage
    assert tree_hashes(run_dir / "export") == tree_hashes(clean / "export")
