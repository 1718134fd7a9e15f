"""A build killed with SIGKILL anywhere is finished by the same command, byte for byte.

Each case starts ``mis-data build`` as a real subprocess on the offline demo, kills it at a
chosen point (inside a stage, or while an export folder is half written), reruns the same
command, and compares every exported file with an uninterrupted build.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.builds import tree_hashes
from tests.support.paths import CONFIGS


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def build_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mis_data", "build", "--config", str(CONFIGS / "demo.yaml"),
            "--run-dir", str(run_dir), "--no-progress"]


def kill_when(run_dir: Path, condition: Callable[[], bool], limit: float = 120.0) -> None:
    """Start a build and SIGKILL it the moment ``condition`` holds; fail if it finished first."""
    process = subprocess.Popen(build_command(run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            if condition():
                os.kill(process.pid, signal.SIGKILL)
                assert process.wait() == -signal.SIGKILL
                return
            if process.poll() is not None:
                pytest.fail(f"the build finished (exit {process.returncode}) before the kill point")
            time.sleep(0.002)
        pytest.fail("the kill point was never reached")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def finish(run_dir: Path) -> None:
    result = subprocess.run(build_command(run_dir), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


POINTS: dict[str, Callable[[Path], bool]] = {
    "images": lambda run: lines(run / "images.jsonl") >= 40,
    "instructions": lambda run: lines(run / "instructions.jsonl") >= 20,
    "judgements": lambda run: lines(run / "judgements.jsonl") >= 20,
    "labels": lambda run: lines(run / "labels.jsonl") >= 5,
    "export": lambda run: (run / "export" / ".hf.partial").exists(),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_build_resumes_to_the_same_bytes(point: str, tmp_path: Path, demo_run: Path) -> None:
    run_dir = tmp_path / "run"
    kill_when(run_dir, lambda: POINTS[point](run_dir))
    finish(run_dir)
    assert tree_hashes(run_dir / "export") == tree_hashes(demo_run / "export")
    assert not list((run_dir / "export").glob(".*"))


def test_two_crashes_in_a_row(tmp_path: Path, demo_run: Path) -> None:
    run_dir = tmp_path / "run"
    kill_when(run_dir, lambda: POINTS["images"](run_dir))
    kill_when(run_dir, lambda: POINTS["judgements"](run_dir))
    finish(run_dir)
    assert tree_hashes(run_dir / "export") == tree_hashes(demo_run / "export")


def test_partial_lines_and_damaged_images_are_redone(tmp_path: Path, demo_run: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run, run_dir)
    shutil.rmtree(run_dir / "export")
    with open(run_dir / "labels.jsonl", "a") as handle:
        handle.write('{"id": "half-written", "text": "The fir')
    images = sorted((run_dir / "images").rglob("*.png"))
    images[0].write_bytes(images[0].read_bytes()[:100])  # truncated
    images[1].unlink()  # gone
    finish(run_dir)
    assert tree_hashes(run_dir / "export") == tree_hashes(demo_run / "export")
    assert tree_hashes(run_dir / "images") == tree_hashes(demo_run / "images")
    assert b"half-written" not in (run_dir / "labels.jsonl").read_bytes()
