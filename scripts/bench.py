"""Whole-pipeline figures, in one run so the ratios are fair (see scripts/README.md).

1. label stage (cache + validation on) vs a bare AsyncOpenAI + parse + gather loop vs the ideal
   N x latency / C, on the same two-image requests to the loopback server;
2. peak RSS of a large label stage vs the bare loop (each in a fresh child process);
3. resume cost: rerunning a finished build (wall-time fraction, requests the server received);
4. export speed of the hf and InternVL exports (scripts/bench_export.py).

    python scripts/bench.py [--n 2000] [--concurrency 64] [--latency 0.2] [--mem-n 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from bench_common import KEY_ENV, bare_loop, bench_config, fill_judged_items, peak_rss_mb, run_child  # noqa: E402
from loopback import LoopbackServer  # noqa: E402

from mis_data.pipeline import prepare, run_build  # noqa: E402
from mis_data.stages.base import run_stage  # noqa: E402
from mis_data.stages.labels import LabelStage  # noqa: E402


async def label_stage(url: str, root: Path, count: int, concurrency: int) -> tuple[float, int]:
    """Seconds for the label stage on ``count`` fresh items, and how many it labelled."""
    ctx = prepare(bench_config(root, url, concurrency), root / "run", show_progress=False)
    fill_judged_items(ctx.run, ctx.store, count)
    start = time.perf_counter()
    stats = await run_stage(LabelStage(ctx))
    seconds = time.perf_counter() - start
    ctx.run.close()
    await ctx.client.aclose()
    return seconds, stats.kept


async def bare(url: str, root: Path, count: int, concurrency: int) -> tuple[float, int]:
    ctx = prepare(bench_config(root, url, concurrency), root / "run", show_progress=False)
    requests = fill_judged_items(ctx.run, ctx.store, count)
    await ctx.client.aclose()
    start = time.perf_counter()
    done = await bare_loop(url, ctx.store, requests, concurrency)
    return time.perf_counter() - start, done


def child(kind: str, count: int, concurrency: int, latency: float) -> None:
    """One measurement in this (fresh) process; prints a JSON line for the parent."""
    with LoopbackServer(latency=latency, keep_bodies=False) as server, \
            tempfile.TemporaryDirectory(prefix="mis-bench-") as temp:
        runner = label_stage if kind == "label" else bare
        seconds, done = asyncio.run(runner(server.url, Path(temp), count, concurrency))
        print(json.dumps({"seconds": seconds, "done": done, "rss_mb": peak_rss_mb(),
                          "requests": server.state.chat_requests}))


def resume_cost(latency: float, concurrency: int) -> None:
    with LoopbackServer(latency=latency, keep_bodies=False) as server, \
            tempfile.TemporaryDirectory(prefix="mis-bench-resume-") as temp:
        root = Path(temp)
        config = bench_config(root, server.url, concurrency)
        times = []
        for _ in range(2):
            before = len(server.state.received)
            start = time.perf_counter()
            asyncio.run(run_build(prepare(config, root / "run", show_progress=False)))
            times.append((time.perf_counter() - start, len(server.state.received) - before))
        (first, first_requests), (again, again_requests) = times
        print(f"3. resume: first build {first:.1f} s ({first_requests} requests); rerun {again:.2f} s "
              f"= {100 * again / first:.1f}% of the first, {again_requests} requests to the server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--mem-n", type=int, default=10000)
    parser.add_argument("--export-n", type=int, default=5000)
    parser.add_argument("--only", choices=["speed", "memory", "resume", "export"], action="append")
    parser.add_argument("--child", choices=["label", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key")
    if args.child:
        child(args.child, args.n, args.concurrency, args.latency)
        return
    parts = args.only or ["speed", "memory", "resume", "export"]
    common = ["--concurrency", str(args.concurrency), "--latency", str(args.latency)]
    if "speed" in parts:
        ideal = args.n * args.latency / args.concurrency
        results = {kind: run_child([__file__, "--child", kind, "--n", str(args.n), *common])
                   for kind in ("label", "bare")}
        ours, theirs = results["label"], results["bare"]
        print(f"1. label stage, N={args.n}, C={args.concurrency}, latency {args.latency} s:")
        print(f"   mis-data label stage {args.n / ours['seconds']:7.1f} rows/s ({ours['done']} labelled)")
        print(f"   bare AsyncOpenAI loop {args.n / theirs['seconds']:7.1f} rows/s")
        print(f"   ideal N*latency/C     {args.n / ideal:7.1f} rows/s")
        print(f"   ratio vs bare {theirs['seconds'] / ours['seconds']:.3f}; vs ideal "
              f"{ideal / ours['seconds']:.3f}")
    if "memory" in parts:
        results = {kind: run_child([__file__, "--child", kind, "--n", str(args.mem_n), *common])
                   for kind in ("label", "bare")}
        ours, theirs = results["label"]["rss_mb"], results["bare"]["rss_mb"]
        print(f"2. peak RSS, N={args.mem_n} (child process incl. loopback server thread): "
              f"label stage {ours:.0f} MB, bare loop {theirs:.0f} MB, ratio {ours / theirs:.2f}")
    if "resume" in parts:
        resume_cost(args.latency, args.concurrency)
    if "export" in parts:
        import subprocess

        print("4. export speed:")
        subprocess.run([sys.executable, str(HERE / "bench_export.py"), "--n", str(args.export_n)],
                       check=True)


if __name__ == "__main__":
    main()
