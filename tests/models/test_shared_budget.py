"""One budget per served model: stages now run at once, and roles that name the same model at
the same address must not add up their concurrency on that server (its GPUs are shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.api import KEY, api_config
from tests.support.cli import run_cli
from tests.support.loopback import LoopbackServer


def build_against_one_server(tmp_path: Path, monkeypatch: Any, judge_model: str) -> int:
    """A streaming build whose roles all name one server with concurrency 2 (the judge by
    ``judge_model``); returns the most requests the server had in flight at once."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(latency=0.03) as server:
        config = api_config(tmp_path, server.url, per_sub=1)
        data = yaml.safe_load(config.read_text())
        for role in ("text", "vision", "image"):
            data["models"][role]["concurrency"] = 2
        data["models"]["judges"] = [dict(data["models"]["text"], model=judge_model)]
        config.write_text(yaml.safe_dump(data))
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run",
                         "--no-progress")
        assert result.exit_code == 0, result.output
        return server.state.peak_in_flight


def test_roles_naming_one_served_model_share_its_concurrency(tmp_path: Path,
                                                             monkeypatch: Any) -> None:
    assert build_against_one_server(tmp_path, monkeypatch, "loopback-vlm") <= 2


def test_another_model_on_the_server_has_a_budget_of_its_own(tmp_path: Path,
                                                             monkeypatch: Any) -> None:
    """The judge names another model (concurrency 8): its requests are not held to the two
    the other roles share."""
    assert build_against_one_server(tmp_path, monkeypatch, "judge-model") > 2
