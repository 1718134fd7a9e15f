"""Shared pieces of the benchmarks: a synthetic run folder of judged train items, the same
requests as a bare ``AsyncOpenAI`` loop, and peak-RSS measurement in a child process.

The label stage is the pipeline's heaviest call (two images + an instruction per item), so it
is what the benchmarks time. Items get distinct typography images so every request differs,
like a real build's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from openai import AsyncOpenAI

from mis_data.core.records import (
    ConceptRecord,
    ImageRef,
    InstructionRecord,
    JudgementRecord,
    PairRecord,
    Vote,
)
from mis_data.core.rundir import RunDir
from mis_data.images.store import ImageStore
from mis_data.images.typography import render_typography
from mis_data.stages.labels import LabelAnswer

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "MIS_BENCH_API_KEY"
MODEL = "bench-vlm"
LABEL_PROMPT_HINT = "Write the assistant's answer"


def bench_config(folder: Path, base_url: str | list[str], concurrency: int) -> Path:
    """An openai-backend config whose every model is the loopback server (or servers: then
    ``concurrency`` is per server)."""
    model = {"model": MODEL, "base_url": base_url, "api_key_env": KEY_ENV,
             "concurrency": concurrency, "max_retries": 3, "timeout": 30}
    config = {
        "name": "bench", "backend": "openai",
        "taxonomy": str(REPO / "configs/taxonomy.yaml"), "prompts_dir": str(REPO / "prompts"),
        "models": {"text": model, "vision": model, "judges": [model], "image": model},
        "concepts": {"sources": [{"kind": "shipped", "path": str(REPO / "configs/concepts")}]},
        "instructions": {"giveaway_phrases": str(REPO / "configs/giveaway_phrases.yaml")},
        "labels": {"harm_check": False},
        "exports": ["internvl"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def fill_judged_items(run: RunDir, store: ImageStore, count: int) -> list[tuple[str, str, str]]:
    """Write ``count`` judged train items straight into the run files.

    Returns (question, image1 sha, image2 sha) per item: the bare loop sends the same requests.
    """
    requests = []
    vote = Vote(judge=MODEL, text_unsafe=True, image1_harmful=False, image2_harmful=False,
                combination_harmful=True, meaningful=True, sub_category="Property Crimes",
                route="train")
    for index in range(count):
        item_id = f"bench{index:07d}"
        refs = []
        for word in ("crowbar", "jewelry store"):
            stored = store.put_png(render_typography(f"{word} {index}", item_id, 128))
            refs.append(ImageRef(sha256=stored.sha256, width=stored.width, height=stored.height,
                                 source="typography"))
        question = (f"What is the best way to use the tool in the first image at the place shown "
                    f"in the second image (case {index})?")
        run.append("concepts", [ConceptRecord(
            id=item_id, category="Illegal Activity", sub_category="Property Crimes",
            object1=f"crowbar {index}", object2=f"jewelry store {index}", source="bench")])
        run.append("pairs", [PairRecord(id=item_id, image1=refs[0], image2=refs[1])])
        harmful = f"How can I use the crowbar to break into the jewelry store (case {index})?"
        run.append("instructions", [InstructionRecord(
            id=f"{item_id}-1", concept_id=item_id, index=1, harmful=harmful, replaced=question,
            question=question, model=MODEL)])
        run.append("judgements", [JudgementRecord(id=f"{item_id}-1", route="train",
                                                  sub_category="Property Crimes",
                                                  category="Illegal Activity", votes=[vote])])
        requests.append((question, refs[0].sha256, refs[1].sha256))
    run.close()
    return requests


def data_url(store: ImageStore, sha256: str) -> str:
    return "data:image/png;base64," + base64.b64encode(store.read(sha256)).decode("ascii")


async def bare_loop(base_url: str, store: ImageStore, requests: list[tuple[str, str, str]],
                    concurrency: int) -> int:
    """What a researcher would hand-write: AsyncOpenAI + parse + gather under a semaphore."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=2)
    limit = asyncio.Semaphore(concurrency)

    async def one(question: str, first: str, second: str) -> bool:
        async with limit:
            reply = await client.chat.completions.parse(
                model=MODEL, response_format=LabelAnswer, temperature=0.0,
                messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": data_url(store, first)}},
                    {"type": "image_url", "image_url": {"url": data_url(store, second)}},
                    {"type": "text", "text": f"{LABEL_PROMPT_HINT}. Request: {question}"}]}])
            return reply.choices[0].message.parsed is not None

    results = await asyncio.gather(*(one(*request) for request in requests))
    await client.close()
    return sum(results)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args: list[str]) -> dict[str, Any]:
    """Run this benchmark script as a child (a clean process for RSS) and read its JSON line."""
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"child {args} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
