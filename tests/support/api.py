"""Builds with ``backend: openai`` against the loopback server: the key, the config, small
concept lists, a one-call build, and a responder whose server dies mid-build."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from mis_data.core.rundir import RunDir
from tests.support.cli import run_cli, write_config
from tests.support.loopback import LoopbackServer, mis_responder
from tests.support.paths import CONFIGS

KEY = "sk-test-SECRET-123"


def api_config(folder: Path, url: str, per_sub: int = 2, **extra: object) -> Path:
    spec = {"model": "loopback-vlm", "base_url": url, "api_key_env": "MIS_LOOPBACK_KEY",
            "concurrency": 8, "max_retries": 4, "timeout": 10,
            "prices": {"input": 1.0, "output": 2.0, "per_image": 0.01}}
    return write_config(folder, backend="openai",
                        models={"text": spec, "vision": spec, "judges": [spec], "image": spec},
                        concepts={"sources": [{"kind": "shipped", "path": str(CONFIGS / "concepts")}],
                                  "max_per_sub_category": per_sub},
                        images={"source": "t2i"}, **extra)


CONCEPTS = "concepts:\n" + "".join(
    f"  - {{sub_category: {sub}, object1: {a}, kind1: tool, object2: {b}, kind2: place}}\n"
    for sub, a, b in (("Property Crimes", "crowbar", "jewelry store"),
                      ("Property Crimes", "bolt cutter", "bicycle rack"),
                      ("Cybercrime", "usb stick", "office laptop")))


def api_build(tmp_path: Path, responder: Any, judges: int = 1, concept_list: str = CONCEPTS,
              **extra: Any) -> tuple[RunDir, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    concepts = tmp_path / "concepts.yaml"
    concepts.write_text(concept_list)
    with LoopbackServer(responder) as server:
        config = api_config(tmp_path, server.url, **extra)
        data = yaml.safe_load(config.read_text())
        data["concepts"] = {"sources": [{"kind": "shipped", "path": str(concepts)}]}
        spec = data["models"]["text"]
        data["models"]["judges"] = [dict(spec, model=f"judge-{i}") for i in range(judges)]
        config.write_text(yaml.safe_dump(data))
        result = run_cli("build", "--config", config, "--run-dir", tmp_path / "run", "--no-progress")
        assert result.exit_code == 0, result.output
        return RunDir(tmp_path / "run"), server.state


# Kinds differ between the pairs, so no two questions of the build read the same (identical
# text-only requests are asked once, and the order below follows each question's own requests).
DISTINCT = """concepts:
  - {sub_category: Property Crimes, object1: crowbar, kind1: tool, object2: jewelry store, kind2: place}
  - {sub_category: Property Crimes, object1: spray can, kind1: container,
     object2: museum wall, kind2: structure}
  - {sub_category: Cybercrime, object1: usb stick, kind1: device, object2: office laptop, kind2: object}
"""


class Dies:
    """A responder that answers like ``mis_responder`` until its ``after``-th request, then
    drops that connection and every later one and closes its listening socket."""

    def __init__(self, after: int) -> None:
        self.after, self.seen, self.server = after, 0, None
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Any:
        with self.lock:
            self.seen += 1
            dead = self.seen >= self.after
            if self.seen == self.after:
                threading.Thread(target=self.kill, daemon=True).start()
        if dead:
            raise ConnectionAbortedError("the server died")  # no response: a dropped connection
        return mis_responder(body)

    def kill(self) -> None:
        self.server.httpd.shutdown()
        self.server.httpd.server_close()

