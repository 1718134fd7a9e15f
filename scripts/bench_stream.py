"""Figures of the streaming build (see scripts/README.md, figures 8-10); nothing is asserted.

8. a whole API build of the shipped concepts against the loopback server, against a bare
   ``AsyncOpenAI`` loop replaying the very requests that build sent (same bodies, same
   concurrency, a fresh server with the same latency): the bare loop knows no order between
   calls, so it is the ceiling a build could reach;
9. the same kind of build over 4 loopback servers against 1 (each serving ``--slots`` requests
   at once, three judges, ``--per-sub`` pairs per sub-category), servers in a process of their
   own as real servers would be;
10. the offline demo build (``configs/demo.yaml``), wall time of the whole command.

    python scripts/bench_stream.py [--latency 0.2] [--concurrency 64] [--only whole|servers|offline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench import host_servers  # noqa: E402
from bench_common import KEY_ENV, bench_config  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

from mis_data.pipeline.runner import prepare, run_build  # noqa: E402
from tests.support.loopback import LoopbackServer  # noqa: E402


def timed_build(config: Path, run: Path) -> float:
    """Seconds for one whole build (stages, splits, exports) in this process."""
    start = time.perf_counter()
    asyncio.run(run_build(prepare(config, run, show_progress=False)))
    return time.perf_counter() - start


async def replay(url: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int) -> int:
    """Send every recorded request again with a bare client, ``concurrency`` at once."""
    client = AsyncOpenAI(base_url=url, api_key="bench", max_retries=0, timeout=60)
    slots = asyncio.Semaphore(concurrency)

    async def one(path: str, body: dict[str, Any]) -> None:
        rest = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
        async with slots:
            if path.endswith("/images/generations"):
                await client.images.generate(model=body["model"], prompt=body["prompt"],
                                             extra_body=rest)
            else:
                reply = await client.chat.completions.create(
                    model=body["model"], messages=body["messages"], extra_body=rest)
                json.loads(reply.choices[0].message.content or "{}")

    await asyncio.gather(*(one(path, body) for path, body in bodies))
    await client.close()
    return len(bodies)


def whole_vs_bare(latency: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mis-bench-whole-") as temp:
        root = Path(temp)
        with LoopbackServer(latency=latency) as server:
            seconds = timed_build(bench_config(root, server.url, concurrency), root / "run")
            bodies = [(r.path, r.body) for r in server.state.received
                      if isinstance(r.body, dict)]
        with LoopbackServer(latency=latency, keep_bodies=False) as server:
            start = time.perf_counter()
            sent = asyncio.run(replay(server.url, bodies, concurrency))
            bare = time.perf_counter() - start
    print(f"8. whole API build of the shipped concepts, C={concurrency} per model, latency "
          f"{latency} s: {len(bodies)} calls in {seconds:.1f} s = {len(bodies) / seconds:.1f} "
          f"calls/s (splits and exports included); bare loop replaying the same {sent} calls "
          f"{sent / bare:.1f} calls/s; ratio {bare / seconds:.2f}")


def servers_build(count: int, latency: float, slots: int, per_sub: int) -> tuple[float, list[int]]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=host_servers, args=(count, latency, slots, theirs))
    process.start()
    try:
        urls = ours.recv()
        with tempfile.TemporaryDirectory(prefix="mis-bench-servers-") as temp:
            root = Path(temp)
            config = bench_config(root, urls, slots)
            data = yaml.safe_load(config.read_text())
            data["concepts"]["max_per_sub_category"] = per_sub
            data["models"]["judges"] = [dict(data["models"]["text"], model=f"judge-{k}")
                                        for k in range(3)]
            config.write_text(yaml.safe_dump(data))
            seconds = timed_build(config, root / "run")
        ours.send("stop")
        return seconds, ours.recv()
    finally:
        process.join(timeout=10)
        process.kill()


def servers(latency: float, slots: int, per_sub: int) -> None:
    one, one_counts = servers_build(1, latency, slots, per_sub)
    four, four_counts = servers_build(4, latency, slots, per_sub)
    print(f"9. whole build, {per_sub} pairs per sub-category, three judges, each server "
          f"{slots} at once with {latency} s latency: 1 server {one:.1f} s "
          f"({sum(one_counts)} calls), 4 servers {four:.1f} s (calls per server {four_counts}); "
          f"speed-up {one / four:.2f}x of the ideal 4x")


def offline() -> None:
    with tempfile.TemporaryDirectory(prefix="mis-bench-offline-") as temp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mis_data", "build", "--config",
                        str(HERE.parent / "configs/demo.yaml"), "--run-dir", str(Path(temp) / "run"),
                        "--no-progress"], check=True, capture_output=True)
        seconds = time.perf_counter() - start
    print(f"10. offline demo build (configs/demo.yaml), the whole command: {seconds:.1f} s "
          f"on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--servers-latency", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--per-sub", type=int, default=6)
    parser.add_argument("--only", choices=["whole", "servers", "offline"], action="append")
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key")
    parts = args.only or ["whole", "servers", "offline"]
    if "whole" in parts:
        whole_vs_bare(args.latency, args.concurrency)
    if "servers" in parts:
        servers(args.servers_latency, args.slots, args.per_sub)
    if "offline" in parts:
        offline()


if __name__ == "__main__":
    main()
