"""``mis-data eval``: ask the model under test, have the judge label each answer, score.

The eval folder is its own truth, like a build's run folder::

    evals/<name>/
      eval.json          backend, models and judge-prompt hash the answers were made with
      images/            the test sets' images, content-addressed (requests name them by sha256)
      cache.sqlite       every model reply; a rerun asks nothing twice
      responses.jsonl    one line per answered item (refusals are answers)
      judgements.jsonl   one line per judged answer, or why the judge gave no labels (MIS only)
      scores.json  scores.png  usage.json

Each item is answered, then judged, by a pool of workers; every line is appended the moment it
is known. A run killed at any point is finished by the same command: finished lines are kept,
replies that came back before the kill are in the cache, and only requests that were in flight
are sent again. ``scores.json`` is computed from the lines alone, so it has the same bytes.
``usage.json`` is rewritten after every line, so a killed session's spending is kept too. One
eval at a time writes a folder (``.lock``): a second is refused at once with the first's pid.

``protocol: awareness`` (``--protocol awareness``) runs MMSafeAware's protocol instead
(``awareness.py``): each item of an awareness export is asked whether its request is safe, the
answer's first word is scored against the item's expected answer, and nothing is judged.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mis_data.core.config import ConfigError, sha256_text
from mis_data.core.lock import FolderLock
from mis_data.core.pool import run_pool
from mis_data.core.prompts import Prompt, PromptLibrary
from mis_data.core.rundir import JsonlAppender, dump_json, read_json_or_none, write_text_atomic
from mis_data.eval.awareness import (
    AWARENESS_PROMPT,
    awareness_request,
    compute_awareness_scores,
)
from mis_data.eval.awareness_report import awareness_table, write_awareness_plot
from mis_data.eval.config import EvalConfig, check_keys, check_test_sets, load_eval_config
from mis_data.eval.offline import OfflineEvalClient
from mis_data.eval.protocol import JUDGE_PROMPT, answer_request, bucket, judge_request
from mis_data.eval.records import JudgementLine, LineUsage, ResponseLine, latest
from mis_data.eval.report import scores_table, write_scores_plot
from mis_data.eval.scores import Outcome, Tally, compute_scores
from mis_data.eval.testsets import EvalItem, detect_format, ingest
from mis_data.images.store import ImageStore
from mis_data.models.base import TextClient
from mis_data.models.session import UsageLog

# What changes an answer: the model and its sampling. Servers, keys, concurrency, limits and
# retries do not (the same model answers the same question anywhere, as a build's cache key
# says), so moving an eval to another server or adding one keeps its folder.
ANSWER_FIELDS = ("model", "temperature", "max_tokens", "seed", "detail", "max_image_side")
JUDGE_FIELDS = ANSWER_FIELDS
SERVER_FIELDS = ("base_url",)  # recorded by evals made before servers were left out


@dataclass
class EvalRun:
    """What one ``mis-data eval`` produced."""

    out: Path
    scores: dict[str, Any]
    table: str
    usage: dict[str, Any]  # usage.json: tokens and cost of every session of this folder
    hint: str | None = None  # items to try again (api_error), when there are any
    nothing_scored: str | None = None  # why no rate could be computed (the command exits 1)


def identity(config: EvalConfig, prompt: Prompt) -> dict[str, Any]:
    """Everything that changes an answer or a label; test sets may grow between runs. An
    awareness eval has no judge; its question is its prompt."""
    model = config.model.model_dump(include=set(ANSWER_FIELDS)) if config.model else None
    if config.protocol == "awareness":
        return {"backend": config.backend,
                "seed": config.seed if config.backend == "offline" else None,
                "model": model if config.backend == "openai" else "offline",
                "protocol": "awareness", "awareness_prompt_sha256": prompt.sha256}
    return {"backend": config.backend, "seed": config.seed if config.backend == "offline" else None,
            "model": model if config.backend == "openai" else "offline",
            "judge": config.judge.model_dump(include=set(JUDGE_FIELDS))
            if config.backend == "openai" else "offline",
            "judge_prompt_sha256": prompt.sha256}


def without_servers(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as compared: an older ``eval.json`` also recorded each model's server."""
    return {key: {k: v for k, v in value.items() if k not in SERVER_FIELDS}
            if key in ("model", "judge") and isinstance(value, dict) else value
            for key, value in settings.items()}


def claim_folder(out: Path, settings: dict[str, Any]) -> None:
    """Bind the folder to its settings; answers made with other settings are never mixed in."""
    path = out / "eval.json"
    previous = read_json_or_none(path)
    if previous is not None and without_servers(previous) != settings:
        changed = sorted(key for key in settings if without_servers(previous).get(key) != settings[key])
        raise ConfigError(f"{out}: made with other settings ({', '.join(changed)} changed); "
                          "use another name or --out")
    if previous != settings:
        write_text_atomic(path, dump_json(settings))


class Worker:
    """Answers and judges items, appending each line as it is known."""

    def __init__(self, config: EvalConfig, client: TextClient, prompt: Prompt, out: Path,
                 usage: UsageLog) -> None:
        self.config, self.client, self.prompt, self.usage = config, client, prompt, usage
        self.awareness = config.protocol == "awareness"  # answers only: no judge
        self.responses = latest(out / "responses.jsonl", ResponseLine)
        self.judgements = latest(out / "judgements.jsonl", JudgementLine)
        self.response_file = JsonlAppender(out / "responses.jsonl")
        self.judgement_file = JsonlAppender(out / "judgements.jsonl")

    def response_for(self, entry: EvalItem) -> ResponseLine | None:
        """The recorded answer that still stands: same content, not a failure to retry."""
        response = self.responses.get(entry.item.key)
        return response if response and response.item_sha256 == entry.sha256 and response.final \
            else None

    def judgement_for(self, entry: EvalItem) -> JudgementLine | None:
        """The recorded judgement that still stands: same content, not a failure to retry."""
        judgement = self.judgements.get(entry.item.key)
        return judgement if judgement and judgement.item_sha256 == entry.sha256 and judgement.final \
            else None

    def pending(self, items: list[EvalItem]) -> list[EvalItem]:
        """The items that still need an answer, or a judgement of an answer they have."""
        def done(entry: EvalItem) -> bool:
            response = self.response_for(entry)
            return response is not None and (self.awareness or response.response is None
                                             or self.judgement_for(entry) is not None)
        return [entry for entry in items if not done(entry)]

    async def answer(self, entry: EvalItem) -> ResponseLine:
        """Ask the model under test; an item whose images could not be stored gets a failed line unasked."""
        item = entry.item
        backend = self.config.backend
        if entry.images is None:
            return ResponseLine(**item.fields(), item_sha256=entry.sha256, response=None,
                                error=f"bad_image: {entry.problem}",
                                model=self.config.model_label(), backend=backend)
        request = awareness_request(item, entry.images, self.prompt) if self.awareness \
            else answer_request(item, entry.images)
        result = await self.client.complete(request)
        usage = LineUsage(input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                          cost_usd=round(result.cost_usd, 8))
        error = None if result.ok else f"{result.reason.value if result.reason else 'no_answer'}: " \
                                       f"{result.detail}"
        return ResponseLine(**item.fields(), item_sha256=entry.sha256,
                            response=result.text if result.ok else None,
                            refused=result.refused, error=error, model=result.model or
                            self.config.model_label(), backend=backend, usage=usage)

    async def judge(self, entry: EvalItem, response: ResponseLine) -> JudgementLine:
        """Ask the judge to label a response; a failed call, refusal or unusable reply becomes the line's
        ``reason``."""
        item = entry.item
        assert entry.images is not None and response.response is not None
        result = await self.client.structured(
            judge_request(item, entry.images, response.response, self.prompt))
        common = {"key": item.key, "item_sha256": entry.sha256, "test_set": item.test_set,
                  "split": item.split, "id": item.id,
                  "judge": result.model or self.config.judge_label(), "backend": self.config.backend}
        if not result.ok or result.value is None:
            reason = result.reason.value if result.reason else "invalid_output"
            return JudgementLine(**common, reason=reason, detail=result.detail[:300])
        labels = result.value.model_dump()
        return JudgementLine(**common, **labels, bucket=bucket(labels["label_perception"],
                                                               labels["label_str"]))

    async def process(self, entry: EvalItem) -> None:
        """Answer and judge one item as needed, appending each line and saving usage as soon as it is
        known."""
        key = entry.item.key
        response = self.response_for(entry)
        if response is None:
            response = await self.answer(entry)
            self.response_file.write_many([response])
            self.responses[key] = response
            self.usage.save(self.client.usage.as_dict())  # a kill keeps what was spent so far
        if not self.awareness and response.response is not None \
                and self.judgement_for(entry) is None:
            judgement = await self.judge(entry, response)
            self.judgement_file.write_many([judgement])
            self.judgements[key] = judgement
            self.usage.save(self.client.usage.as_dict())

    def close(self) -> None:
        """Close both appenders; the lines already written are complete."""
        self.response_file.close()
        self.judgement_file.close()


async def run_items(worker: Worker, pending: list[EvalItem], width: int, progress: bool) -> None:
    """Process ``pending`` with ``width`` concurrent workers; an error cancels the rest and is raised."""
    bar = tqdm(total=len(pending), desc="eval", unit="item", disable=not progress)

    async def one(entry: EvalItem) -> None:
        await worker.process(entry)
        bar.update(1)
        bar.set_postfix(cost=f"${worker.client.usage.total.cost_usd:.4f}", refresh=False)

    try:
        await run_pool(pending, width, one)
    finally:
        bar.close()


def make_client(config: EvalConfig, store: ImageStore, out: Path) -> TextClient:
    """The offline client, or a real client with the model under test and the judge as its two roles."""
    if config.backend == "offline":
        return OfflineEvalClient(config.seed)
    from mis_data.models.client import OpenAIClient

    assert config.model is not None
    return OpenAIClient(None, store, out / "cache.sqlite", max_cost=config.max_cost,
                        roles={"model": config.model, "judge": config.judge})


def run_eval(config_path: Path, out: Path | None = None, max_cost: float | None = None,
             progress: bool = False, protocol: str | None = None) -> EvalRun:
    """``mis-data eval``: load and check the config, then evaluate under the folder's lock."""
    config = load_eval_config(config_path, {"out": out, "max_cost": max_cost,
                                            "protocol": protocol})
    check_keys(config, config_path)
    check_test_sets(config, config_path)
    check_protocol(config, config_path)
    prompt = PromptLibrary(config.prompts_folder()).get(
        AWARENESS_PROMPT if config.protocol == "awareness" else JUDGE_PROMPT)
    folder = config.out_dir
    with FolderLock(folder, "eval"):  # one eval per folder: a second would answer everything twice
        return evaluate(config, prompt, folder, progress)


def check_protocol(config: EvalConfig, source: Path) -> None:
    """An awareness eval reads awareness exports only, and MIS's protocol never reads one: their
    items mean different things (a yes/no question with an expected answer, an attack)."""
    for index, spec in enumerate(config.test_sets):
        kind = detect_format(spec.path) if spec.format == "auto" else spec.format
        if (kind == "awareness") != (config.protocol == "awareness"):
            wanted = "an awareness export (or a run folder that has one)" \
                if config.protocol == "awareness" else "a MIS layout or a Hugging Face folder"
            raise ConfigError(f"{source}: test_sets.{index}.path: {spec.path} reads as {kind}; "
                              f"protocol {config.protocol} needs {wanted}")


def evaluate(config: EvalConfig, prompt: Prompt, folder: Path, progress: bool) -> EvalRun:
    """Claim the folder, answer and judge what is not done yet, score (holding its lock)."""
    settings = identity(config, prompt)
    claim_folder(folder, settings)
    store = ImageStore(folder / "images", max_side=config.image_max_side)
    items = ingest(config.test_sets, store, progress)

    async def go() -> None:
        client = make_client(config, store, folder)
        usage = UsageLog(folder)
        worker = Worker(config, client, prompt, folder, usage)
        model = config.model.capacity if config.model else 0
        width = 8 if config.backend == "offline" else model if config.protocol == "awareness" \
            else config.judge.capacity + model
        try:
            await run_items(worker, worker.pending(items), width, progress)
        finally:
            worker.close()
            usage.save(client.usage.as_dict())
            await client.aclose()

    asyncio.run(go())
    scores, outcomes = write_scores(config, settings, items, folder)
    reasons = awareness_failures(scores) if config.protocol == "awareness" \
        else failure_reasons(outcomes)
    retry = reasons.get("api_error", 0)
    table = awareness_table(scores) if config.protocol == "awareness" else scores_table(scores)
    return EvalRun(out=folder, scores=scores, table=table,
                   usage=read_json_or_none(folder / "usage.json") or {},
                   hint=f"{retry} item(s) failed on transient server errors (api_error): run the "
                        "same command again to retry them" if retry else None,
                   nothing_scored=nothing_scored_line(scores, reasons))


def failure_reasons(outcomes: list[Outcome]) -> dict[str, int]:
    """Items that could not be scored, by reason (the answer's or the judge's), benign included."""
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
    reasons: dict[str, int] = {}
    for key, count in tally.failures.items():
        reason = key.split(":", 1)[1]
        reasons[reason] = reasons.get(reason, 0) + count
    return dict(sorted(reasons.items()))


def awareness_failures(scores: dict[str, Any]) -> dict[str, int]:
    """An awareness eval's unanswered items by reason, unsafe and benign together."""
    reasons: dict[str, int] = {}
    for side in ("unsafe", "benign"):
        for reason, count in scores["totals"][side]["failed_reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    return dict(sorted(reasons.items()))


def nothing_scored_line(scores: dict[str, Any], reasons: dict[str, int]) -> str | None:
    """One line when no rate could be computed (no answer judged, no benign answer scored, no
    awareness answer read): how many items failed, why, and what to do; None when something
    was scored."""
    if scores.get("protocol") == "awareness":
        if scores["totals"]["answered"]:
            return None
    elif scores["totals"]["judged"] or any(row["answered"] for row in scores["over_refusal"]):
        return None
    failed = sum(reasons.values())
    why = next(iter(reasons)) if len(reasons) == 1 else ", ".join(
        f"{reason}: {count}" for reason, count in reasons.items())
    again = "; run the same command again" if "api_error" in reasons else ""
    return f"nothing was scored: {failed} items failed ({why}){again}"


def write_scores(config: EvalConfig, settings: dict[str, Any], items: list[EvalItem],
                 folder: Path) -> tuple[dict[str, Any], list[Outcome]]:
    """``scores.json`` and ``scores.png`` from the lines alone; the scores and each outcome."""
    responses = latest(folder / "responses.jsonl", ResponseLine)
    judgements = latest(folder / "judgements.jsonl", JudgementLine)
    def current(lines: dict[str, Any], entry: EvalItem) -> Any:
        line = lines.get(entry.item.key)
        return line if line is not None and line.item_sha256 == entry.sha256 else None

    outcomes = [Outcome(e.item, current(responses, e), current(judgements, e)) for e in items]
    test_sets = [{"name": spec.label, "path": str(spec.path), "splits": spec.splits,
                  "format": detect_format(spec.path) if spec.format == "auto" else spec.format}
                 for spec in config.test_sets]
    digest = sha256_text(json.dumps(settings, sort_keys=True))
    if config.protocol == "awareness":  # no judge, and no split filter: every subset is read
        header = {"name": config.name, "backend": config.backend, "model": config.model_label(),
                  "settings_sha256": digest,
                  "awareness_prompt_sha256": settings["awareness_prompt_sha256"],
                  "test_sets": [{k: v for k, v in t.items() if k != "splits"} for t in test_sets]}
        if config.backend == "offline":
            header["note"] = "offline: rule-based model, not a language model"
        scores = compute_awareness_scores([(o.item, o.response) for o in outcomes], header)
        write_text_atomic(folder / "scores.json", dump_json(scores))
        write_awareness_plot(scores, folder / "scores.png")
        return scores, outcomes
    header = {"name": config.name, "backend": config.backend, "model": config.model_label(),
              "judge": config.judge_label(), "settings_sha256": digest,
              "judge_prompt_sha256": settings["judge_prompt_sha256"], "test_sets": test_sets}
    if config.backend == "offline":
        header["note"] = "offline: rule-based model and judge, not a language model"
    scores = compute_scores(outcomes, header)
    write_text_atomic(folder / "scores.json", dump_json(scores))
    write_scores_plot(scores, folder / "scores.png")
    return scores, outcomes
