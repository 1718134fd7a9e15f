"""The package stands alone: a wheel built from the checkout carries every config and prompt a
build needs, and `mis-data init` + the demo build work from an empty folder without the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.paths import ROOT


def test_init_writes_a_starter_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = run_cli("init", tmp_path / "project")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "project/configs/demo.yaml").is_file()
    assert (tmp_path / "project/prompts/label.md").is_file()
    assert list((tmp_path / "project/configs/concepts").glob("*.yaml"))
    edited = tmp_path / "project/prompts/label.md"
    edited.write_text("my own prompt")
    again = run_cli("init", tmp_path / "project")
    assert again.exit_code == 2 and "already exists" in again.output
    assert edited.read_text() == "my own prompt"


def test_a_wheel_builds_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels),
               str(ROOT)]
    command.insert(4, "--no-build-isolation")  # the dev extra's setuptools: no download
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True)
    site = tmp_path / "site"
    with zipfile.ZipFile(next(wheels.glob("mis_data-*.whl"))) as wheel:
        wheel.extractall(site)  # installing a pure-Python wheel is unpacking it
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=empty, env=env, capture_output=True,
                              text=True, timeout=300)

    where = run("-c", "import mis_data; print(mis_data.__file__)")
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # not the checkout
    assert run("-m", "mis_data", "init", "demo").returncode == 0
    build = run("-m", "mis_data", "build", "--config", "demo/configs/demo.yaml", "--no-progress")
    assert build.returncode == 0, build.stderr[-2000:]
    assert (empty / "runs/demo/export/hf/README.md").is_file()
    assert run("-m", "mis_data", "validate", "runs/demo/export/mis").returncode == 0
    # demo_plus needs more than YAML: the stand-in benchmark's JSON and images travel too
    plus = run("-m", "mis_data", "build", "--config", "demo/configs/demo_plus.yaml",
               "--no-progress", "--yes")
    assert plus.returncode == 0, plus.stderr[-2000:]
    assert '"contaminated": 6' in (empty / "runs/demo_plus/manifest.json").read_text()
