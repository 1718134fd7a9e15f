"""``executor: ray`` on a local Ray that the test starts (the machine's cores): the demo gives
the single-process bytes, a build killed mid-stage (driver, workers and Ray itself) is finished
by the same command to the same bytes, and the cluster keeps a server's concurrency however
many workers send to it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from mis_data.core.config import ConfigError
from mis_data.pipeline.cluster import RayItems
from mis_data.pipeline.runner import prepare, run_build
from tests.support.api import KEY, api_config
from tests.support.builds import ray_demo_config, tree_hashes
from tests.support.loopback import LoopbackServer


def total_requests(run: Path) -> float:
    return json.loads((run / "usage.json").read_text())["total"]["requests"]


def test_the_demo_on_ray_gives_the_single_process_bytes(tmp_path: Path, demo_run: Path) -> None:
    ctx = prepare(ray_demo_config(tmp_path), tmp_path / "run", show_progress=False)
    runner = ctx.remote
    assert isinstance(runner, RayItems)
    asyncio.run(run_build(ctx))
    assert tree_hashes(tmp_path / "run" / "export") == tree_hashes(demo_run / "export")
    assert all(count > 100 for count in runner.sent)  # both workers did the stages' work
    assert total_requests(tmp_path / "run") == total_requests(demo_run)  # the workers' usage
    assert not ray.is_initialized()  # the build started Ray, and stopped it


def build_command(config: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mis_data", "build", "--config", str(config),
            "--run-dir", str(run_dir), "--no-progress"]


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_ray_build_killed_mid_stage_resumes_to_the_same_bytes(tmp_path: Path,
                                                                 demo_run: Path) -> None:
    """SIGKILL to the build's whole process group (the driver, its Ray and the workers) while
    the judges work; the same command finishes it."""
    config, run_dir = ray_demo_config(tmp_path), tmp_path / "run"
    process = subprocess.Popen(build_command(config, run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while lines(run_dir / "judgements.jsonl") < 20:
            assert process.poll() is None, "the build finished before the kill point"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not (run_dir / "export").exists()
    again = subprocess.run(build_command(config, run_dir), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert tree_hashes(run_dir / "export") == tree_hashes(demo_run / "export")


def test_the_cluster_keeps_a_servers_concurrency_over_every_worker(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    """Two workers, every role on one server with concurrency 2: each worker alone would send
    two at once, the cluster's limits actor keeps the server at two in all."""
    monkeypatch.setenv("MIS_LOOPBACK_KEY", KEY)
    with LoopbackServer(latency=0.05) as server:
        config = api_config(tmp_path, server.url, per_sub=1, executor="ray",
                            ray={"num_workers": 2})
        data = yaml.safe_load(config.read_text())
        data["images"] = {"source": "typography"}
        for role in ("text", "vision", "image"):
            data["models"][role]["concurrency"] = 2
        data["models"]["judges"] = [data["models"]["text"]]
        config.write_text(yaml.safe_dump(data))
        ctx = prepare(config, tmp_path / "run", show_progress=False)
        runner = ctx.remote
        assert isinstance(runner, RayItems)
        asyncio.run(run_build(ctx))
        assert (tmp_path / "run" / "export").is_dir()
        assert min(runner.sent) > 10  # both workers sent requests
        bodies = [json.dumps(r.body, sort_keys=True) for r in server.state.received
                  if r.path.endswith("/chat/completions")]
        assert len(bodies) == len(set(bodies))  # nothing asked twice (a pair's items share)
        assert server.state.peak_in_flight == 2
        assert max(runner.last_peaks.values()) == 2


def test_batch_is_refused_on_ray(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--batch cannot be used with executor: ray"):
        prepare(ray_demo_config(tmp_path), tmp_path / "run", batch=True)
    assert not (tmp_path / "run").exists()


def test_without_ray_installed_the_build_says_which_extra_to_install(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is absent
    with pytest.raises(ConfigError, match=r"pip install 'mis-data\[ray\]'"):
        prepare(ray_demo_config(tmp_path), tmp_path / "run")
    assert not (tmp_path / "run").exists()
