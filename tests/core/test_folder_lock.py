"""One writer per run folder and per eval folder (issue #27, case 2).

Two ``mis-data build`` (or ``mis-data eval``) started on one folder: the second is refused at
once, naming the first's pid, and the first finishes with the bytes of a build nobody disturbed.
The first is held with SIGSTOP while the second tries, so the overlap does not depend on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mis_data.core.lock import LOCK_FILE, FolderLock
from mis_data.reports.review import write_review
from mis_data.reports.review.serve import serve
from tests.support.browser import post
from tests.support.builds import build, copy_run, run_cli, shared_run, tree_hashes, write_config
from tests.support.eval_layout import eval_config, write_layout

MIS_DATA = Path(sys.executable).parent / "mis-data"
SUBS = (("Illegal Activity", "Property Crimes"), ("Violent", "Weapon-Related Violence"))


def holder_pid(folder: Path) -> int | None:
    try:
        return json.loads((folder / LOCK_FILE).read_text() or "null")["pid"]
    except (FileNotFoundError, TypeError, ValueError):
        return None


@contextmanager
def holding(command: list[str], folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` started and stopped (SIGSTOP) the moment it holds ``folder``'s lock; it
    goes on when the block ends, and must then finish with exit 0."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while holder_pid(folder) != process.pid:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the first command never took the lock"
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGSTOP)
        try:
            yield process
        finally:
            os.kill(process.pid, signal.SIGCONT)
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def refused(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - started


def test_a_second_build_on_a_folder_is_refused_and_the_first_is_untouched(tmp_path: Path) -> None:
    clean = build(write_config(tmp_path / "clean"), tmp_path / "clean/run")
    run = tmp_path / "run"
    command = [str(MIS_DATA), "build", "--config", str(write_config(tmp_path)),
               "--run-dir", str(run), "--no-progress"]
    with holding(command, run) as first:
        second, seconds = refused(command)
    assert second.returncode == 5 and second.stdout == ""
    assert second.stderr == (f"error: {run} is in use by mis-data pid {first.pid} (build); "
                             "wait for it or stop it\n")
    assert seconds < 5  # about a second on two busy cores, most of it Python starting up
    assert tree_hashes(run / "export") == tree_hashes(clean / "export")
    for stage in ("concepts", "instructions", "images", "judgements", "labels", "rejects"):
        assert (run / f"{stage}.jsonl").read_bytes().count(b"\n") == \
            (clean / f"{stage}.jsonl").read_bytes().count(b"\n"), stage
    assert (run / LOCK_FILE).read_bytes() == b""  # let go: no holder is named


def test_a_second_eval_on_a_folder_is_refused_and_the_first_is_untouched(tmp_path: Path) -> None:
    items = [{"tag": f"x{n}", "category": SUBS[n % 2][0], "sub_category": SUBS[n % 2][1]}
             for n in range(1, 121)]
    write_layout(tmp_path, {"easy": items[:80], "hard": items[80:]})
    sets = [{"path": str(tmp_path / "mis_test")}]
    assert run_cli("eval", "--config", eval_config(tmp_path / "clean", sets), "--no-progress"
                   ).exit_code == 0
    config = eval_config(tmp_path / "twice", sets)
    out = tmp_path / "twice/out"
    command = [str(MIS_DATA), "eval", "--config", str(config), "--no-progress"]
    with holding(command, out) as first:
        second, seconds = refused(command)
    assert second.returncode == 5 and second.stdout == ""
    assert second.stderr == (f"error: {out} is in use by mis-data pid {first.pid} (eval); "
                             "wait for it or stop it\n")
    assert seconds < 5
    assert (out / "scores.json").read_bytes() == (tmp_path / "clean/out/scores.json").read_bytes()
    assert (out / "responses.jsonl").read_bytes().count(b"\n") == 120


def a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path_factory, tmp_path: Path) -> None:
    run = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    (run / LOCK_FILE).write_text(json.dumps({"pid": a_dead_pid(), "command": "build"}))
    result = run_cli("split", run)
    assert result.exit_code == 0, result.output
    assert (run / LOCK_FILE).read_bytes() == b""


def test_readers_need_no_lock_and_writers_wait_for_none(tmp_path_factory, tmp_path: Path) -> None:
    run = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    with FolderLock(run, "build"):  # as a build in another process would hold it
        for command in (["info", run], ["stats", run], ["validate", run / "export/mis"],
                        ["review", run]):
            assert run_cli(*command).exit_code == 0, command
        for command in (["split", run], ["export", run], ["apply-decisions", run],
                        ["decontaminate", run, "--against", run / "export/mis"]):
            result = run_cli(*command)
            assert result.exit_code == 5, command
            assert f"in use by mis-data pid {os.getpid()} (build)" in result.output, command


def test_the_review_server_takes_the_lock_for_each_write(tmp_path_factory, tmp_path: Path) -> None:
    run = copy_run(shared_run(tmp_path_factory), tmp_path / "run")
    write_review(run)
    server = serve(run)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = server.url.replace("/review/index.html", "/api/decisions")
    decision = json.dumps({"id": "x", "scope": "sample", "action": "drop", "reason": "duplicate",
                           "reviewer": "Ada", "at": "2025-01-01T00:00:00Z"}).encode()
    try:
        with FolderLock(run, "build"):
            assert post(api, decision, **{"Content-Type": "application/json"}) == 409
            assert not (run / "decisions.jsonl").exists()
        assert post(api, decision, **{"Content-Type": "application/json"}) == 200
        assert (run / "decisions.jsonl").read_bytes().count(b"\n") == 1
        assert run_cli("apply-decisions", run).exit_code == 0  # not locked while serving
    finally:
        server.shutdown()
        server.server_close()
