"""The shipped real-build configs load, and the CLI stops cleanly at the cost cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIGS, run_cli, write_config
from loopback import LoopbackServer

from mis_data.config import load_config


@pytest.mark.parametrize("name", ["demo.yaml", "openai.yaml", "vllm.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert config.taxonomy.is_file() and config.prompts_dir.is_dir()


def test_max_cost_stops_the_build_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIS_LOOPBACK_KEY", "sk-test")
    with LoopbackServer() as server:
        spec = {"model": "m", "base_url": server.url, "api_key_env": "MIS_LOOPBACK_KEY",
                "prices": {"input": 100.0, "output": 100.0}}
        config = write_config(tmp_path, backend="openai",
                              models={"text": spec, "vision": spec, "judges": [spec], "image": spec})
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--max-cost", "0.5", "--no-progress")
        assert result.exit_code == 3
        assert "higher --max-cost" in result.output
        done = (tmp_path / "run/instructions.jsonl").read_text().count("\n")
        again = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                        "--max-cost", "100", "--no-progress")
        assert again.exit_code == 0, again.output
        assert (tmp_path / "run/instructions.jsonl").read_text().count("\n") > done
