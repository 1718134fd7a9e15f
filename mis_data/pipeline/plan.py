"""What a build will ask before it asks anything: requests, tokens, dollars and time per stage.

The counts follow what the stages do (README "Costs"): per pair 1 harmful-questions call; per
question a modify call, and a detox call for each question modify keeps; per pair 2 image
generations and 1 critique (2 more generations when the critic refines); per judged question
and judge 2 calls (text alone, then with both images); per train question a label and, when on,
a harm check. Generated concept sources ask in rounds per sub-category. What cannot be known
before the models answer is an explicit, printed assumption (``Assumptions``): how many
questions survive each filter, how many pairs the critic refines, the train share. Feedback
rounds (a failed check sent back once) can at most double the checked calls: that is the
upper end of the request range.

Tokens: the real prompt files are rendered with the real facts of up to 200 concepts of the
config (generated pairs take the shipped ones' average), plus the response schema a server is
given, at 4 characters a token; images by the provider's documented rule
(``limits.image_tokens``, from the image size the config produces and ``detail``); output by the
assumed length of each reply field. Dollars from each model's ``prices``; time from its
``concurrency`` with an assumed latency, or its ``rpm`` / ``tpm``, whichever is slower.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mis_data.core.config import (
    BuildConfig,
    ConfigError,
    GeneratedConcepts,
    HFDatasetConcepts,
    ImageFolderConcepts,
    ModelSpec,
    QueryFileConcepts,
    ShippedConcepts,
)
from mis_data.core.prompts import PromptLibrary
from mis_data.core.records import ConceptRecord, RejectRecord
from mis_data.core.targets import resolve_targets
from mis_data.images.sources import folder_images, shipped_entries
from mis_data.models.limits import image_tokens
from mis_data.models.wire import strict_schema
from mis_data.pipeline.preflight import Checked, load_checked, preflight
from mis_data.stages import STAGES, TASKS
from mis_data.stages.base import BuildContext, ModelTask, PlanProbe
from mis_data.stages.concept_rules import concept_from_entry
from mis_data.stages.concepts import apply_filters

CHARS_PER_TOKEN = 4
SAMPLE_CONCEPTS = 200
PLAN_FILE = "plan.json"


@dataclass
class Assumptions:
    """What the plan cannot know before the models answer; each is printed with the plan.

    Defaults are guesses for a real build, the train share is MIS's (3,927 of 6,212). Reply
    lengths are characters of the free-text fields a reply carries.
    """

    no_risk_rate: float = 0.05      # questions the modify step drops (no_risk)
    filter_drop_rate: float = 0.05  # questions the detox validators reject at the end
    refine_rate: float = 0.3        # pairs the image critic sends to a second round
    dedup_rate: float = 0.01        # questions dropped as near-duplicates
    discard_rate: float = 0.1       # judged questions discarded or tied
    train_share: float = 0.632      # of the routed questions, the share routed to train
    declined_rate: float = 0.05     # pairs lost to refusals and blocks (targets: yield)
    leakage_rate: float = 0.2       # routed questions excluded as split leakage (targets)
    question_chars: int = 100       # a generated question
    reason_chars: int = 120         # a reason or explanation field
    text_latency: float = 3.0       # seconds a text request takes
    vision_latency: float = 6.0     # seconds a request with images takes
    image_latency: float = 15.0     # seconds an image generation takes

    @classmethod
    def parse(cls, settings: list[str]) -> Assumptions:
        """``["train_share=0.5", ...]`` (the CLI's ``--assume``) over the defaults."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for setting in settings:
            name, _, value = setting.partition("=")
            name = name.strip().replace("-", "_")
            if name not in known or not value:
                raise ConfigError(f"--assume {setting!r}: expected NAME=VALUE with NAME one of "
                                  f"{', '.join(known)}")
            try:
                values[name] = int(value) if known[name] == "int" else float(value)
            except ValueError:
                raise ConfigError(f"--assume {setting!r}: {value!r} is not a number") from None
        return cls(**values)


@dataclass
class Row:
    """One stage and model: what it will be asked, and what that costs."""

    stage: str
    task: str
    role: str
    model: str
    requests: int = 0
    max_requests: int = 0  # with every checked call sent back once
    input_tokens: int = 0
    image_tokens: int = 0  # part of input_tokens
    output_tokens: int = 0
    images: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0


@dataclass
class Plan:
    """What ``mis-data plan`` predicts for a config before anything is sent: one row per stage and request
    kind, the expected counts along the flow, the assumptions behind them, and notes."""
    rows: list[Row]
    counts: dict[str, int]
    assumptions: Assumptions
    notes: list[str] = field(default_factory=list)

    def by_stage(self) -> dict[str, dict[str, Any]]:
        """The rows summed per stage; a stage's time is its slowest row, since its requests to different
        models run side by side."""
        stages: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            entry = stages.setdefault(row.stage, {"requests": 0, "max_requests": 0,
                                                  "input_tokens": 0, "output_tokens": 0,
                                                  "images": 0, "cost_usd": 0.0, "seconds": 0.0})
            for key in ("requests", "max_requests", "input_tokens", "output_tokens", "images",
                        "cost_usd"):
                entry[key] += getattr(row, key)
            entry["seconds"] = max(entry["seconds"], row.seconds)  # lanes of a stage overlap
        return stages

    @property
    def total(self) -> dict[str, Any]:
        """The whole build: requests, tokens and images summed, cost and time rounded."""
        total: dict[str, Any] = dict.fromkeys(("requests", "max_requests", "input_tokens",
                                               "output_tokens", "images", "cost_usd", "seconds"), 0.0)
        for entry in self.by_stage().values():
            for key, value in entry.items():
                total[key] += value
        return {key: (round(value, 4) if key in ("cost_usd", "seconds") else int(value))
                for key, value in total.items()}

    @property
    def cost(self) -> float:
        """The estimated cost in USD, unrounded (what ``build --confirm-above`` is compared with)."""
        return sum(row.cost_usd for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data, floats rounded to four places (``mis-data plan --json``)."""
        stages = {stage: {key: (round(v, 4) if isinstance(v, float) else v)
                          for key, v in entry.items()} for stage, entry in self.by_stage().items()}
        return {"counts": self.counts, "assumptions": asdict(self.assumptions),
                "rows": [{key: (round(v, 4) if isinstance(v, float) else v)
                          for key, v in asdict(row).items()} for row in self.rows],
                "stages": stages, "total": self.total, "notes": self.notes}

    def lines(self) -> list[str]:
        """The plan as the command prints it: the flow, one table row per request kind, the total, the
        assumptions and the notes."""
        counts = self.counts
        out = [f"plan: {counts['concepts']} concept pairs -> {counts['questions']} questions -> "
               f"~{counts['judged']} judged -> ~{counts['train']} train",
               f"  {'stage / request':<32}{'model':<20}{'requests':>13}{'input tok':>12}{'(images)':>12}"
               f"{'output tok':>12}{'images':>8}{'cost $':>10}{'time':>9}"]
        for row in self.rows:
            requests = (f"{row.requests}" if row.max_requests == row.requests
                        else f"{row.requests}-{row.max_requests}")
            name = f"{row.stage} / {row.task.removeprefix('instruction_')}"
            out.append(f"  {name[:31]:<32}{row.model[:19]:<20}{requests:>13}{row.input_tokens:>12,}"
                       f"{row.image_tokens:>12,}{row.output_tokens:>12,}{row.images:>8}"
                       f"{row.cost_usd:>10.2f}{duration(row.seconds):>9}")
        total = self.total
        out.append(f"  {'total':<52}{total['requests']:>13}{total['input_tokens']:>12,}"
                   f"{'':>12}{total['output_tokens']:>12,}{total['images']:>8}"
                   f"{total['cost_usd']:>10.2f}{duration(total['seconds']):>9}")
        out.append(f"  requests with every checked reply sent back once: up to "
                   f"{total['max_requests']}")
        if "batch_rounds" in counts:
            out.append(f"  --batch: {counts['batch_rounds']} sequential batch rounds, up to "
                       f"{counts['batch_rounds_max']} with every checked reply sent back once "
                       "(each round waits for a whole batch: up to 24 h at a provider)")
        out.append("assumptions (change with --assume NAME=VALUE): " + ", ".join(
            f"{key}={value}" for key, value in asdict(self.assumptions).items()))
        out += [f"note: {note}" for note in self.notes]
        return out


def duration(seconds: float) -> str:
    """Seconds as a short human figure: seconds under 90, minutes under 90 minutes, hours above."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def tokens_of(text: str) -> int:
    """Estimated tokens of a text, from its length (``CHARS_PER_TOKEN``)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def schema_tokens(model: type[BaseModel]) -> int:
    """What the response schema adds to a request (servers put it in the prompt)."""
    return tokens_of(json.dumps(strict_schema(model)))


# -- concepts --------------------------------------------------------------------------------

@dataclass
class ConceptCount:
    """What the plan expects of the concepts step: the shipped concepts kept, the final count per
    sub-category, the requests per task, and the generation rounds."""
    concepts: list[ConceptRecord]  # shipped ones, exactly as the concept stage keeps them
    per_sub: dict[str, int]        # final count per sub-category (shipped + generated, capped)
    requests: dict[str, tuple[int, int, str]]  # task -> (requests, max requests, role)
    # sequential rounds of requests (sources are read one after another): a generated
    # source's rounds, one for a source whose entries are extracted
    rounds: int = 0


def count_concepts(ctx: BuildContext) -> ConceptCount:
    """The concept list the stage will keep: shipped entries filtered as the stage filters them
    (duplicates, sub-categories, quota); generated and extracted sources by their settings."""
    config, taxonomy = ctx.config, ctx.taxonomy
    candidates: list[tuple[str, ConceptRecord | RejectRecord]] = []
    extra: dict[str, int] = defaultdict(int)
    requests: dict[str, tuple[int, int, str]] = {}
    unknown_size = False  # a Hugging Face source without a limit: its size is only known once loaded
    concept_rounds = 0
    for source in config.concepts.sources:
        if isinstance(source, ShippedConcepts):
            label = f"shipped:{source.path.name}"
            candidates += [(where, concept_from_entry(entry, where, label, taxonomy, config.seed,
                                                      ctx.kinds, config.images_per_sample))
                           for where, entry in shipped_entries(source)]
        elif isinstance(source, GeneratedConcepts):
            named = source.sub_categories or config.concepts.sub_categories
            subs = ([taxonomy.canonical(n) or n for n in named] if named
                    else taxonomy.sub_category_names)
            rounds = math.ceil(source.per_sub_category / source.per_request)
            for sub in subs:
                extra[sub] += source.per_sub_category
            low, high, _ = requests.get("concept_generate", (0, 0, "text"))
            requests["concept_generate"] = (low + rounds * len(subs), high + 2 * rounds * len(subs),
                                            "text")
            concept_rounds += rounds
        else:
            if isinstance(source, QueryFileConcepts):
                with open(source.path, encoding="utf-8") as handle:
                    count = max(0, sum(1 for line in handle if line.strip()) - (
                        source.path.suffix == ".csv"))
                task, role = "concept_from_query", "text"
            elif isinstance(source, ImageFolderConcepts):
                count = len(folder_images(source.path)[0])
                task, role = "concept_from_image", "vision"
            else:  # a Hugging Face dataset: its size is only known once loaded
                count = source.limit or 0
                unknown_size = unknown_size or not source.limit
                task, role = "concept_from_query", "text"
            count = min(count, source.limit) if source.limit else count
            low, high, _ = requests.get(task, (0, 0, role))
            requests[task] = (low + count, high + 2 * count, role)
            concept_rounds += 1
            extra["(extracted)"] += count
    kept, _ = apply_filters(candidates, ctx)
    per_sub: dict[str, int] = defaultdict(int)
    for concept in kept:
        per_sub[concept.sub_category] += 1
    quota = config.concepts.max_per_sub_category
    for sub, count in extra.items():
        per_sub[sub] += count
    if quota:
        per_sub = defaultdict(int, {sub: min(n, quota) for sub, n in per_sub.items()})
    if not any(per_sub.values()) and not unknown_size:
        raise ConfigError(f"{source_names(config)}: no concept pair is left to build from (every "
                          "entry was rejected or filtered out by concepts.sub_categories)")
    return ConceptCount(concepts=kept, per_sub=dict(per_sub), requests=requests,
                        rounds=concept_rounds)


def source_names(config: BuildConfig) -> str:
    """The concept sources of a config as a message names them: paths, or dataset names."""
    return ", ".join(str(getattr(source, "path", None) or getattr(source, "name", source.kind))
                     for source in config.concepts.sources)


# -- tokens per request ------------------------------------------------------------------------

class PromptSizes:
    """Average input tokens of each request type, from the real prompt files and facts: each
    task renders its own prompt for a sample of the planned concepts (``ModelTask.plan_text``)."""

    def __init__(self, ctx: BuildContext, concepts: list[ConceptRecord], a: Assumptions) -> None:
        self.ctx = ctx
        self.a = a
        self.sample = concepts[:: max(1, len(concepts) // SAMPLE_CONCEPTS)][:SAMPLE_CONCEPTS]
        # no run folder yet: the facts come from the planned concept list
        self.probe = PlanProbe(ctx=ctx, assumptions=a, label_chars=self.label_chars(),
                               concepts=concepts, question=self.question())
        self.cache: dict[str, float] = {}

    def question(self, fill: str = "q") -> str:
        """A stand-in question of the assumed length, so prompts render at their expected size."""
        return (fill * self.a.question_chars)[: self.a.question_chars]

    def average(self, task: ModelTask) -> float:
        """Input tokens of the task's prompt, rendered for each sampled concept; 150 for a task
        that gives no rendering (``plan_text``)."""
        if task.name not in self.cache:
            if task.plan_text is None:
                self.cache[task.name] = 150
            else:
                texts = [task.plan_text(replace(self.probe, concept=concept))
                         for concept in self.sample] or [""]
                self.cache[task.name] = sum(tokens_of(text) for text in texts) / len(texts)
        return self.cache[task.name]

    def label_chars(self) -> int:
        """A label's assumed length in characters: the middle of ``labels.min_words`` and ``max_words``."""
        words = (self.ctx.config.labels.min_words + self.ctx.config.labels.max_words) / 2
        return int(words * 5.8)  # characters a word of English prose, with its space

    def output_chars(self, task: ModelTask) -> int:
        """Assumed reply length in characters: the free-text fields plus JSON punctuation."""
        return task.reply_chars(self.probe) if task.reply_chars is not None else 200


# -- the plan --------------------------------------------------------------------------------

def planning_context(checked: Checked) -> BuildContext:
    """What the plan needs of a build's context: config, taxonomy, kinds, prompts; no run
    folder, no client, no key (a plan must work before a key is set)."""
    config = checked.config
    return BuildContext(config=config, run=None, taxonomy=checked.taxonomy,  # type: ignore[arg-type]
                        prompts=PromptLibrary(config.prompts_dir), client=None,  # type: ignore[arg-type]
                        store=None, kinds=checked.kinds)  # type: ignore[arg-type]


def image_side(config: BuildConfig, spec: ModelSpec) -> tuple[int, int]:
    """The size an image reaches a vision model at: made, stored (max_side), sent (max_image_side)."""
    if config.images.source == "t2i":
        width, height = (int(n) for n in config.models.image.size.lower().split("x"))
    elif config.images.source == "typography":
        width = height = config.images.typography_size
    else:
        width = height = 1024  # folders and datasets: unknown until read
    for limit in (config.images.max_side, spec.max_image_side):
        scale = min(1.0, limit / max(width, height))
        width, height = round(width * scale), round(height * scale)
    return width, height


@dataclass
class TargetPlan:
    """What ``targets:`` will take under the assumptions: concepts per sub-category added in a
    top-up round, the rounds expected, and why a sub-category may stay short."""

    top_up: dict[str, int]
    rounds: int
    lines: list[str]


def plan_targets(ctx: BuildContext, per_sub: dict[str, int], a: Assumptions) -> TargetPlan:
    """Round 1 gives each sub-category its concepts times the assumed yield per concept; a
    sub-category short of a target gets the concepts it lacks in round 2 (the build measures
    real yields instead, so more rounds run when the assumptions are optimistic)."""
    config = ctx.config
    assert config.targets is not None
    wanted = resolve_targets(config, ctx.taxonomy)
    survive = ((1 - a.no_risk_rate) * (1 - a.filter_drop_rate) * (1 - a.dedup_rate)
               * (1 - a.discard_rate) * (1 - a.declined_rate) * (1 - a.leakage_rate))
    per_concept = config.instructions.per_pair * survive
    yields = {"train": per_concept * a.train_share, "test": per_concept * (1 - a.train_share)}
    top_up: dict[str, int] = {}
    for side, targets in wanted.items():
        for sub, target in targets.items():
            have = per_sub.get(sub, 0) * yields[side]
            if have < target:
                top_up[sub] = max(top_up.get(sub, 0), math.ceil((target - have) / yields[side]))
    generated = any(isinstance(s, GeneratedConcepts) for s in config.concepts.sources)
    spare = spare_shipped(ctx, per_sub)
    lines = [f"targets: per sub-category {', '.join(f'{side} {describe(t)}' for side, t in wanted.items())}; "
             f"yield per concept ~{yields['train']:.2f} train, ~{yields['test']:.2f} test"]
    short = [sub for sub, n in top_up.items() if not generated and spare.get(sub, 0) < n]
    rounds = 2 if top_up else 1
    lines.append(f"targets: expected {rounds} round(s) of at most {config.targets.max_rounds}"
                 + (f"; round 2 adds {sum(top_up.values())} concepts in {len(top_up)} "
                    "sub-categories" if top_up else ""))
    if short:
        lines.append("targets: no generated source and too few unused shipped concepts for "
                     + ", ".join(sorted(short)) + ": they will stay short")
    return TargetPlan(top_up=top_up, rounds=rounds, lines=lines)


def describe(targets: dict[str, int]) -> str:
    """A per-sub-category target as one figure, or a range when sub-categories differ."""
    values = sorted(set(targets.values()))
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def spare_shipped(ctx: BuildContext, per_sub: dict[str, int]) -> dict[str, int]:
    """Shipped concepts per sub-category beyond those round 1 takes."""
    total: dict[str, int] = defaultdict(int)
    for source in ctx.config.concepts.sources:
        if isinstance(source, ShippedConcepts):
            for where, entry in shipped_entries(source):
                concept = concept_from_entry(entry, where, "shipped", ctx.taxonomy,
                                             ctx.config.seed, ctx.kinds,
                                             ctx.config.images_per_sample)
                if isinstance(concept, ConceptRecord):
                    total[concept.sub_category] += 1
    return {sub: max(0, n - per_sub.get(sub, 0)) for sub, n in total.items()}


def make_plan(config: Checked | BuildConfig, assumptions: Assumptions | None = None,
              batch: bool = False) -> Plan:
    """The plan of a checked config (a bare config is checked first, without API keys)."""
    a = assumptions or Assumptions()
    checked = config if isinstance(config, Checked) else preflight(config, keys=False)
    config = checked.config
    ctx = planning_context(checked)
    concepts = count_concepts(ctx)
    sizes = PromptSizes(ctx, concepts.concepts, a)
    models = config.models
    targets = plan_targets(ctx, concepts.per_sub, a) if config.targets else None
    pairs = sum(concepts.per_sub.values()) + (sum(targets.top_up.values()) if targets else 0)
    questions = pairs * config.instructions.per_pair
    kept = round(questions * (1 - a.no_risk_rate))
    final = round(kept * (1 - a.filter_drop_rate))
    judged = round(final * (1 - a.dedup_rate))
    routed = round(judged * (1 - a.discard_rate))
    train = round(routed * a.train_share)
    labelled = routed if config.labels.for_test else train
    harm_check = config.labels.harm_check if config.labels.harm_check is not None \
        else config.backend != "offline"
    t2i = config.images.source == "t2i"
    critique = t2i and config.images.critique
    refined = round(pairs * a.refine_rate) if critique else 0

    rows: list[Row] = []

    def add(stage: str, role: str, spec: ModelSpec, name: str, count: int, checked: bool,
            images: int = 0, max_count: int | None = None, row_name: str | None = None) -> None:
        """A row for ``count`` requests of the declared task ``name``."""
        if count <= 0 and not max_count:
            return
        task = TASKS[name]
        schema = task.reply_model(ctx)
        side = image_side(config, spec)
        per_image = image_tokens(side[0], side[1], spec.detail)
        per_request = sizes.average(task) + (schema_tokens(schema) if schema else 0) \
            + images * per_image
        output = tokens_of("x" * sizes.output_chars(task))
        row = Row(stage=stage, task=row_name or name, role=role, model=spec.model, requests=count,
                  max_requests=max_count if max_count is not None else count * (2 if checked else 1),
                  input_tokens=round(count * per_request), image_tokens=count * images * per_image,
                  output_tokens=count * output)
        rows.append(row)

    for task, (low, high, role) in concepts.requests.items():
        spec = models.text if role == "text" else models.vision
        add("concepts", role, spec, task, low, False, images=int(role == "vision"), max_count=high)
    add("instructions", "text", models.text, "instruction_harmful", pairs, True)
    add("instructions", "text", models.text, "instruction_modify", questions, True)
    add("instructions", "text", models.text, "instruction_detox", kept, True)
    k = config.images_per_sample  # images per sample: drawn, and sent with every vision request
    if t2i:
        generations = k * pairs + k * refined
        rows.append(Row(stage="images", task="generate_image", role="image", model=models.image.model,
                        requests=generations, max_requests=2 * k * pairs if critique else generations,
                        images=generations))
    if critique:
        add("images", "vision", models.vision, "image_critique", pairs, False, images=k)
    # the images alone are judged once per pair: its questions share the cached answer (the
    # offline backend keeps no cache and answers each question's request)
    judged_pairs = judged if config.backend == "offline" else min(pairs, judged)
    for index, spec in enumerate(models.judges):
        add("judgements", f"judge:{index}", spec, "judge_text", judged, False)
        add("judgements", f"judge:{index}", spec, "judge_image_harm", judged_pairs, False,
            images=k)
        add("judgements", f"judge:{index}", spec, "judge_images", judged, False, images=k)
    add("labels", "vision", models.vision,
        "label_dream" if config.labels.style == "dream" else "label", labelled, True, images=k)
    if harm_check:
        add("labels", "vision", models.vision, "label_harm_check", labelled, False, images=k)
    if config.twins is not None:
        # a twin per chosen judged sample (the eligible share is not known before judging:
        # counted as every chosen one); its object or question, then its answer
        twins = round(judged * (1 - a.discard_rate) * config.twins.ratio)
        add("twins", "text", models.text, "twin_text", twins, True,
            row_name="twin_object_or_question")  # a new object or a new question, alike in size
        if t2i and {"swap_image", "alarming_text"} & set(config.twins.kinds):
            # a swap draws one new image, an alarming-text twin all of its images
            drawn = k if "alarming_text" in config.twins.kinds else 1
            rows.append(Row(stage="twins", task="generate_image", role="image",
                            model=models.image.model, requests=0, max_requests=twins * drawn,
                            images=0))
        for index, spec in enumerate(models.judges):  # every twin is judged before it joins
            add("twins", f"judge:{index}", spec, "judge_text", twins, False)
            add("twins", f"judge:{index}", spec, "judge_image_harm", twins, False, images=k)
            add("twins", f"judge:{index}", spec, "judge_images", twins, False, images=k)
        add("twins", "vision", models.vision, "twin_label", twins, True, images=k)
    counts = {"concepts": pairs, "questions": questions, "kept_by_modify": kept,
              "judged": judged, "routed": routed, "train": train, "labelled": labelled,
              "rewrite": train if config.rewrite is not None else 0}
    for stage_name, stage in STAGES.items():  # stages beyond the built-in flow plan themselves
        for model_task in stage.tasks:
            if model_task.plan_requests is not None and model_task.role in ("text", "vision"):
                add(stage_name, model_task.role,
                    models.text if model_task.role == "text" else models.vision,
                    model_task.name, model_task.plan_requests(counts), False,
                    images=k if model_task.role == "vision" else 0)
    responder = models.responder or models.vision
    if config.rewrite is not None:  # the responder answers each question and each rewritten
        # prompt; the judges label both answers
        answers = 2 * train
        per_image = image_tokens(*image_side(config, responder), responder.detail)
        rows.append(Row(stage="rewrites", task="rewrite_respond", role="responder",
                        model=responder.model, requests=answers, max_requests=answers,
                        input_tokens=answers * (tokens_of(sizes.question()) + k * per_image),
                        image_tokens=answers * k * per_image,
                        output_tokens=answers * responder.max_tokens // 2))
        for index, spec in enumerate(models.judges):
            add("rewrites", f"judge:{index}", spec, "rewrite_judge", answers, False, images=k)
    roles = {"text": models.text, "vision": models.vision, "image": models.image,
             "responder": responder, **{f"judge:{i}": spec for i, spec in enumerate(models.judges)}}
    for row in rows:
        spec = roles[row.role]
        if config.backend != "offline":
            share = spec.prices.batch if batch and row.role != "image" else 1.0
            row.cost_usd = share * (row.input_tokens * spec.prices.input
                                    + row.output_tokens * spec.prices.output) / 1e6 \
                + row.images * spec.prices.per_image
        row.seconds = lane_seconds(row, spec, a)
    notes = []
    batch_counts: dict[str, int] = {}
    if batch:
        low, high = batch_rounds(rows, concepts.rounds, targets.rounds if targets else 1)
        batch_counts = {"batch_rounds": low, "batch_rounds_max": high}
    if batch and config.backend != "offline":
        notes.append("--batch: chat requests billed at each model's `prices.batch` share of the "
                     "list price (default 0.5), image generations at full price; the times "
                     "assume no batch queue (a provider may take up to 24 h a batch)")
    if any(isinstance(s, HFDatasetConcepts) and not s.limit for s in config.concepts.sources):
        notes.append("a hf_dataset concept source without `limit` is counted as 0 queries: its "
                     "size is known only once it is loaded")
    if config.backend == "offline":
        notes.append("backend offline: the requests are answered locally, no tokens are billed")
    if any(isinstance(s, GeneratedConcepts) for s in config.concepts.sources):
        notes.append("generated concepts: each sub-category asks per_sub_category / per_request "
                     "rounds, up to twice that when proposals repeat (the range)")
    if config.decontaminate is not None:
        notes.append(f"decontamination against {len(config.decontaminate.against)} benchmark(s) "
                     "asks no model; it only lowers train by what matches (not estimated)")
    notes.append("the plan counts a whole build; a resumed build asks only what is not done "
                 "(answers are cached)")
    if targets is not None:
        notes += targets.lines
    return Plan(rows=rows, assumptions=a, notes=notes,
                counts={"concepts": pairs, "questions": questions, "kept_by_modify": kept,
                        "judged": judged, "train": train, "labelled": labelled,
                        "refined_pairs": refined, **batch_counts,
                        **({"rounds": targets.rounds,
                            "top_up_concepts": sum(targets.top_up.values())} if targets else {})})


# -- batch rounds ------------------------------------------------------------------------------

JUDGED = ("judge_text", "judge_image_harm", "judge_images")

# The steps whose requests wait for the answers of another step: with ``--batch`` each is a
# sequential batch (the requests of pairs that are ready early join a batch that is going out
# anyway). Each step: its name, the step it waits for, the stage and tasks of its plan rows. A
# step with no rows in a build passes its wait on (the critique between detox and the judges is
# there only with t2i images and a critic). Measured against the loopback batch server
# (tests/models/test_batch_build.py checks the plan's figure against a real --batch build).
BATCH_STEPS: tuple[tuple[str, str | None, str, tuple[str, ...]], ...] = (
    ("harmful", "concepts", "instructions", ("instruction_harmful",)),
    ("modify", "harmful", "instructions", ("instruction_modify",)),
    ("detox", "modify", "instructions", ("instruction_detox",)),
    ("critique", "detox", "images", ("image_critique",)),
    ("judges", "critique", "judgements", JUDGED),
    ("label", "judges", "labels", ("label", "label_dream")),
    ("harm check", "label", "labels", ("label_harm_check",)),
    ("twin", "harm check", "twins", ("twin_object_or_question",)),
    ("twin judges", "twin", "twins", JUDGED),
    ("twin label", "twin judges", "twins", ("twin_label",)),
    # a rewrite: the responder's answer, judged, the hindsight, the causal analysis, the
    # rewritten prompt, the responder's answer to it and the judges' gate
    ("answer", "harm check", "rewrites", ("rewrite_respond",)),
    ("answer judged", "answer", "rewrites", ("rewrite_judge",)),
    ("hindsight", "answer judged", "rewrites", ("rewrite_hindsight",)),
    ("causal", "hindsight", "rewrites", ("rewrite_causal",)),
    ("rewrite", "causal", "rewrites", ("rewrite_prompt",)),
    ("gate answer", "rewrite", "rewrites", ("rewrite_respond",)),
    ("gate", "gate answer", "rewrites", ("rewrite_judge",)),
)


def batch_rounds(rows: Sequence[Row], concept_rounds: int, build_rounds: int) -> tuple[int, int]:
    """The sequential batches of a ``--batch`` build: the longest chain of waiting steps, at
    least and at most (when a step's checked replies are sent back once, each such step is
    two rounds, as is each round of concept generation). A step of a stage the table does not
    know (a new stage's task) counts as one round after everything else; a top-up round of
    ``targets`` goes through the whole chain again."""
    ends: dict[str, tuple[int, int]] = {"concepts": (concept_rounds, 2 * concept_rounds)}
    known: set[tuple[str, str]] = set()
    for step, after, stage, tasks in BATCH_STEPS:
        low, high = ends[after or "concepts"]
        mine = [row for row in rows if row.stage == stage and row.task in tasks and row.requests]
        known |= {(stage, task) for task in tasks}
        if mine:
            low, high = low + 1, high + (2 if any(r.max_requests > r.requests for r in mine) else 1)
        ends[step] = (low, high)
    low, high = max(end[0] for end in ends.values()), max(end[1] for end in ends.values())
    if any((row.stage, row.task) not in known and row.requests and row.role != "image"
           and row.stage != "concepts" for row in rows):
        low, high = low + 1, high + 2
    return low * build_rounds, high * build_rounds


def lane_seconds(row: Row, spec: ModelSpec, a: Assumptions) -> float:
    """The slowest of: requests x latency / concurrency, requests / rpm, tokens / tpm."""
    latency = a.image_latency if row.role == "image" else (
        a.vision_latency if row.image_tokens else a.text_latency)
    seconds = row.requests * latency / spec.capacity
    if spec.rpm:
        seconds = max(seconds, row.requests / spec.rpm * 60)
    if spec.tpm:
        seconds = max(seconds, (row.input_tokens + row.output_tokens) / spec.tpm * 60)
    return seconds


def plan_config(path: Path, assumptions: Assumptions | None = None,
                overrides: dict[str, Any] | None = None, batch: bool = False) -> Plan:
    """The plan of a config file; API keys are not needed, so a plan can be made before they are set."""
    return make_plan(load_checked(path, overrides, keys=False), assumptions, batch=batch)
