"""The Hugging Face export loads with the oldest ``datasets`` the project supports (3.6.0).

Issue #18: files written by ``datasets`` >= 4 stored ``"_type": "List"`` and every config failed
in 3.x with ``ValueError: Feature type 'List' not found``. The newest ``datasets`` is the one
mis-data itself runs on, so test_export_hf.py covers it in-process; 3.6.0 cannot live beside it,
so it gets a virtualenv of its own and loads the export in a subprocess, through the same checker
``scripts/check_consumers.sh`` uses (``scripts/consumers/check_hf.py``).

The venv is built once per machine, under the consumers' cache (``MIS_DATA_CONSUMERS_CACHE``,
default ``~/.cache/mis-data-consumers``, shared with the script), which needs PyPI the first
time. Measured on the 2-core machine: the module takes ~20 s with a new venv (17 s of it the
venv, ~440 MB; same with pip's cache off) and ~4 s once the venv exists.
``MIS_DATA_SKIP_OLD_DATASETS=1`` skips it on a machine without PyPI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.builds import read_jsonl, shared_run
from tests.support.paths import ROOT

OLDEST = "3.6.0"
CHECKER = ROOT / "scripts/consumers/check_hf.py"
CACHE = Path(os.environ.get("MIS_DATA_CONSUMERS_CACHE", Path.home() / ".cache/mis-data-consumers"))
SPLIT_OF = {"train/train": "train", "train/validation": "val", "easy/test": "easy",
            "hard/test": "hard", "real/test": "real"}


def datasets_version(python: Path) -> str | None:
    if not python.is_file():
        return None
    result = subprocess.run([str(python), "-c", "import datasets, PIL; print(datasets.__version__)"],
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture(scope="session")
def old_python() -> Path:
    """A venv with datasets==3.6.0 and Pillow, made once (an unfinished one is made again)."""
    if os.environ.get("MIS_DATA_SKIP_OLD_DATASETS") == "1":
        pytest.skip("MIS_DATA_SKIP_OLD_DATASETS=1")
    venv = CACHE / f"datasets-{OLDEST}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").is_file() or datasets_version(python) != OLDEST:
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"datasets=={OLDEST}",
                                  "pillow"], capture_output=True, text=True, timeout=1200)
        assert install.returncode == 0, f"pip install datasets=={OLDEST} failed:\n{install.stderr[-2000:]}"
        (venv / ".ready").touch()
    assert datasets_version(python) == OLDEST
    return python


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_run(tmp_path_factory)


def load_with(python: Path, folder: Path, run: Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
    """The checker's exit code, its ``RESULT`` summary and its whole output."""
    result = subprocess.run([str(python), str(CHECKER), str(folder), "--run-dir", str(run)],
                            capture_output=True, text=True, timeout=600, cwd=cwd)
    output = result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, output
    return result.returncode, json.loads(lines[-1][len("RESULT "):]), output


def test_every_config_loads_with_datasets_3_6(old_python: Path, run: Path, tmp_path: Path) -> None:
    code, summary, output = load_with(old_python, run / "export/hf", run, tmp_path)
    assert code == 0, output
    assert summary["datasets"] == OLDEST
    assert summary["configs"] == ["train", "easy", "hard"]
    expected = {name: len(read_jsonl(run / "splits" / f"{split}.jsonl"))
                for name, split in SPLIT_OF.items() if (run / "splits" / f"{split}.jsonl").is_file()}
    expected = {name: rows for name, rows in expected.items() if rows}
    assert {name: split["rows"] for name, split in summary["splits"].items()} == expected
    assert set(expected) == {"train/train", "train/validation", "easy/test", "hard/test"}
    for split in summary["splits"].values():
        assert split["images_per_row"] == [2]
        assert split["decoded"] == 2 * split["rows"]
        assert split["features"].startswith("Sequence(feature=Image(")  # 3.x's name for it


def test_the_export_before_issue_18_fails_there(old_python: Path, run: Path, tmp_path: Path) -> None:
    """Files as datasets' own ``to_parquet`` writes them (what the export did before #18)."""
    from datasets import Dataset

    folder = tmp_path / "hf"
    shutil.copytree(run / "export/hf", folder)
    for path in folder.rglob("*.parquet"):
        Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "cache")).to_parquet(str(path))
    code, summary, output = load_with(old_python, folder, run, tmp_path)
    assert code == 1
    assert summary["splits"] == {}
    assert "ValueError: Feature type 'List' not found" in output
