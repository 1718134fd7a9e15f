"""The demo's 336 concept pairs built against a provider that refuses, blocks and fails.

Runs ``mis-data build`` on the whole shipped concept list (14 sub-categories x 24 pairs) with
text-to-image images, three judges, benign twins and ``targets:``, against the tests' loopback
``HostileProvider``: the hosted text model refuses the harmful questions for about half of the
Self-Harm and Erotic pairs and 15% of the others (an open fallback model answers them), 10% of
image prompts come back ``400 moderation_blocked``, one of three judges fails 15% of its
requests with HTTP 500 every time they are sent, and a quarter of the twins keep their risk.
Then it runs the same command again and prints the figures: rejects by stage and reason,
refusal and block rates per model and sub-category, rounds, target vs achieved, the spread of
the sub-categories, the twins and their votes, and the requests the rerun sent.

    python scripts/hostile_build.py [--out runs/hostile] [--train 20] [--test 8]

Figures are printed, never asserted (tests/models/test_hostile_provider.py asserts on a small build).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mis_data.cli import app  # noqa: E402
from mis_data.core.records import TwinRecord  # noqa: E402
from mis_data.core.rundir import RunDir  # noqa: E402
from mis_data.core.targets import read_targets  # noqa: E402
from tests.support.hostile import HostileProvider  # noqa: E402
from tests.support.loopback import LoopbackServer  # noqa: E402

REPO = HERE.parent
KEY_ENV = "MIS_LOOPBACK_KEY"


def config(folder: Path, url: str, train: int, test: int) -> Path:
    spec = {"base_url": url, "api_key_env": KEY_ENV, "concurrency": 32, "max_retries": 1,
            "timeout": 30, "prices": {"input": 0.15, "output": 0.6, "per_image": 0.04}}
    data = {
        "name": "hostile", "seed": 0, "backend": "openai",
        "taxonomy": str(REPO / "configs/taxonomy.yaml"), "prompts_dir": str(REPO / "prompts"),
        "models": {"text": {**spec, "model": "hosted-text",
                            "fallback": [{**spec, "model": "open-text"}]},
                   "vision": {**spec, "model": "hosted-vision"},
                   "judges": [{**spec, "model": f"judge-{i}"} for i in range(3)],
                   "image": {**spec, "model": "hosted-image"}},
        "concepts": {"sources": [{"kind": "shipped", "path": str(REPO / "configs/concepts")},
                                 {"kind": "generated", "per_sub_category": 0}],  # top-ups only
                     "max_per_sub_category": 24},
        "instructions": {"per_pair": 3,
                         "giveaway_phrases": str(REPO / "configs/giveaway_phrases.yaml")},
        "images": {"source": "t2i"}, "labels": {"min_words": 40},
        "twins": {"ratio": 0.3}, "targets": {"train": train, "test": test, "max_rounds": 3},
        "exports": ["mis", "internvl", "llamafactory", "hf"]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build(path: Path, run: Path) -> float:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["build", "--config", str(path), "--run-dir", str(run),
                                      "--no-progress", "--yes"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return time.monotonic() - started


def split_counts(run: Path) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {"train": Counter(), "test": Counter()}
    for split, side in (("train", "train"), ("val", "train"), ("easy", "test"), ("hard", "test")):
        path = run / "splits" / f"{split}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            row = json.loads(line)
            if not row.get("twin_of") and row.get("sub_category") != "General":
                counts[side][row["sub_category"]] += 1
    return counts


def report(run: Path, provider: HostileProvider, seconds: float, rerun: float,
           sent: int, resent: int) -> None:
    folder = RunDir(run)
    rejects = Counter((r.stage, r.reason.value) for r in folder.rejects())
    print(f"build: {sent} requests in {seconds:.0f} s; rerun: {resent} requests in {rerun:.1f} s")
    print("rejects by stage and reason:")
    for (stage, reason), count in sorted(rejects.items()):
        print(f"  {stage:<14}{reason:<20}{count:>6}")
    print(f"  api_error rejects: {sum(n for (s, r), n in rejects.items() if r == 'api_error')}")
    print("provider events: " + ", ".join(f"{k}={v}" for k, v in sorted(provider.seen.items())))
    usage = json.loads((run / "usage.json").read_text())
    rows: dict[tuple[str, str], Counter[str]] = {}
    subs: dict[tuple[str, str], Counter[str]] = {}
    for session in usage["sessions"]:
        for row in session.get("outcomes", []):
            key = (row["task"], row["model"])
            rows.setdefault(key, Counter()).update(
                {k: row[k] for k in ("answered", "refused", "blocked", "failed")})
            if row["refused"] or row["blocked"] or key[0] == "instruction_harmful":
                subs.setdefault((row["sub_category"], row["model"]), Counter()).update(
                    {k: row[k] for k in ("answered", "refused", "blocked", "failed")})
    print("requests by step and model (sent): answered / refused / blocked / failed")
    for (task, model), c in sorted(rows.items()):
        total = sum(c.values())
        print(f"  {task:<22}{model:<14}{total:>6}  {c['answered']:>6} {c['refused']:>5} "
              f"({100 * c['refused'] / total:4.1f}%) {c['blocked']:>5} "
              f"({100 * c['blocked'] / total:4.1f}%) {c['failed']:>5}")
    print("harmful-question step per sub-category and model: refused (blocked) / sent")
    for (sub, model), c in sorted(subs.items()):
        total = sum(c.values())
        print(f"  {sub:<38}{model:<14}{c['refused']:>4} ({c['blocked']}) / {total}")
    rounds = read_targets(folder)
    print(f"rounds run: {len(rounds)}")
    for entry in rounds:
        print(f"  round {entry['round']}: top-up {entry['top_up'] or 'none'}; "
              f"notes {entry['notes']}")
    counts = split_counts(run)
    targets = rounds[-1]["targets"] if rounds else {}
    print("target vs achieved (train, test):")
    for sub in sorted(set(counts["train"]) | set(counts["test"]) | set(targets.get("train", {}))):
        print(f"  {sub:<38}{targets.get('train', {}).get(sub, '-'):>4} {counts['train'][sub]:>4}"
              f"   {targets.get('test', {}).get(sub, '-'):>4} {counts['test'][sub]:>4}")
    for side in ("train", "test"):
        values = [counts[side][sub] for sub in sorted(counts[side])]
        median = statistics.median(values) if values else 0
        low = min(values) if values else 0
        print(f"  {side}: min {low}, median {median}, min/median "
              f"{low / median if median else 0:.2f} (>= 0.8 wanted)")
    twins = folder.read("twins", TwinRecord)
    exported = sum(1 for side in ("train", "twins") for line in
                   ((run / f"splits/{side}.jsonl").read_text().splitlines()
                    if (run / f"splits/{side}.jsonl").exists() else [])
                   if json.loads(line).get("twin_of"))
    print(f"twins: {len(twins)} made, {exported} in the splits, "
          f"votes per twin: {Counter(len(t.votes or []) for t in twins)}; rejected as still "
          f"risky: {rejects.get(('twins', 'twin_still_risky'), 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/hostile"))
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--test", type=int, default=8)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.environ[KEY_ENV] = "sk-loopback-hostile"
    provider = HostileProvider()
    with LoopbackServer(provider, images=provider.images, keep_bodies=False) as server:
        path = config(args.out, server.url, args.train, args.test)
        seconds = build(path, args.out / "run")
        sent = len(server.state.received)
        rerun = build(path, args.out / "run")
        resent = len(server.state.received) - sent
    report(args.out / "run", provider, seconds, rerun, sent, resent)


if __name__ == "__main__":
    main()
