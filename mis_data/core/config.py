"""Build configuration: one YAML file says everything about a build.

Every model is pydantic with ``extra="forbid"`` so that a misspelled key is an error naming the
key and the file, never a silently ignored setting. Relative paths in a config file are resolved
against the folder of that file, so a config works from any working directory. The environment
is read here and nowhere else: API keys are looked up by the variable name the config gives and
are never stored on a model, written to a file or put in a message.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mis_data.core.records import OptionalFields
from mis_data.starter import shipped_path

# The version of the run-folder layout; a folder of another version is refused, never mixed.
FORMAT_VERSION = 1


class ConfigError(Exception):
    """A config problem, phrased as one line that names the file and the key."""


class Strict(BaseModel):
    """Base of every config section: an unknown key is an error, never a silently ignored setting."""

    model_config = ConfigDict(extra="forbid")


class Prices(Strict):
    """USD per million tokens (and per generated image for image models)."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    per_image: float = Field(default=0.0, ge=0)
    # The share of the token prices a Batch API request is billed at (``--batch``): half at
    # OpenAI and most hosts that offer batches. Image generations are never batched.
    batch: float = Field(default=0.5, gt=0, le=1)


class Endpoint(Strict):
    """One server of a model role; unset fields take the model's own values."""

    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(default=None, ge=1, le=4096)


class ModelSpec(Strict):
    """One model behind one or more OpenAI-compatible endpoints (OpenAI, vLLM, SGLang, ...).

    ``base_url`` may be a list, or ``endpoints`` may give each server its own key variable and
    concurrency: requests then go to the server with the fewest in flight, and a server that
    fails is left out for ``cooldown_seconds`` while the others carry on. When every server of
    the model refuses connections or times out for ``all_down_seconds`` without a break, the
    build (or eval) stops rather than wait, or reject item after item, in silence.
    """

    model: str
    base_url: str | list[str] | None = None
    endpoints: list[Endpoint] | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(default=16, ge=1, le=4096)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    all_down_seconds: float = Field(default=60.0, gt=0)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=5, ge=0, le=50)
    timeout: float = Field(default=120.0, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = None
    max_tokens: int = Field(default=1024, ge=1)
    prices: Prices = Prices()
    detail: Literal["auto", "low", "high"] = "auto"
    max_image_side: int = Field(default=1024, ge=64)
    size: str = "1024x1024"
    # Models asked, in order, when this one refuses or the provider blocks the request: e.g. an
    # open model on your own server for the harmful questions a hosted model will not write.
    fallback: list[ModelSpec] = Field(default_factory=list)

    @field_validator("fallback")
    @classmethod
    def _flat_fallbacks(cls, fallback: list[ModelSpec]) -> list[ModelSpec]:
        if any(spec.fallback for spec in fallback):
            raise ValueError("a fallback model cannot have fallbacks of its own: list them all "
                             "under the first model")
        return fallback

    @model_validator(mode="after")
    def _one_way_to_name_servers(self) -> ModelSpec:
        if self.endpoints is not None and self.base_url is not None:
            raise ValueError("give either base_url or endpoints, not both")
        if self.endpoints == [] or self.base_url == []:
            raise ValueError("an empty list of endpoints names no server")
        urls = [server.base_url for server in self.servers()]
        if len(urls) > 1 and (None in urls or len(set(urls)) != len(urls)):
            raise ValueError("with several endpoints, each needs its own base_url")
        return self

    def servers(self) -> list[Endpoint]:
        """Every endpoint with its key variable and concurrency filled in."""
        if self.endpoints is not None:
            listed = self.endpoints
        elif isinstance(self.base_url, list):
            listed = [Endpoint(base_url=url) for url in self.base_url]
        else:
            listed = [Endpoint(base_url=self.base_url)]
        return [Endpoint(base_url=server.base_url,
                         api_key_env=server.api_key_env or self.api_key_env,
                         concurrency=server.concurrency or self.concurrency)
                for server in listed]

    @property
    def capacity(self) -> int:
        """Requests this role can have in flight over all its servers."""
        return sum(server.concurrency or self.concurrency for server in self.servers())

    def key_variables(self) -> list[str]:
        """Every key variable this model and its fallbacks read."""
        own = {server.api_key_env or self.api_key_env for server in self.servers()}
        return sorted(own.union(*(spec.key_variables() for spec in self.fallback)))

    def api_key(self, variable: str | None = None) -> str | None:
        """The key from the environment variable this model (or one server) names; None when unset."""
        return os.environ.get(variable or self.api_key_env) or None


class ModelsConfig(OptionalFields, Strict):
    """The model behind each role. The judges vote, so there is at least one, and none has a
    fallback: a judge that gives no vote leaves the decision to the others."""

    # left out of a run's config.yaml while unset: as written before the option existed
    optional_fields = ("responder",)

    text: ModelSpec = ModelSpec(model="gpt-4o-mini")
    vision: ModelSpec = ModelSpec(model="gpt-4o")
    judges: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec(model="gpt-4o")])
    image: ModelSpec = ModelSpec(model="gpt-image-1")
    # The model the rewrite stage's unsafe answers and quality gate ask (``rewrite:``); None:
    # the vision model answers. Off the generation hash while None.
    responder: ModelSpec | None = None

    @field_validator("judges")
    @classmethod
    def _at_least_one_judge(cls, judges: list[ModelSpec]) -> list[ModelSpec]:
        if not judges:
            raise ValueError("at least one judge model is needed")
        if any(judge.fallback for judge in judges):
            raise ValueError("a judge has no fallback: when it gives no vote the other judges "
                             "decide (list another model as a judge instead)")
        return judges

    @field_validator("responder")
    @classmethod
    def _responder_alone(cls, responder: ModelSpec | None) -> ModelSpec | None:
        if responder is not None and responder.fallback:
            raise ValueError("the responder has no fallback: its refusal is an answer the "
                             "rewrite stage records")
        return responder

    def untried_fallback(self, declined_by: list[str]) -> bool:
        """Whether a request that these models declined (first the role's own model, then its
        fallbacks in order) has a fallback in today's config that was not asked yet."""
        if not declined_by:
            return False
        return any(role.model == declined_by[0]
                   and not {spec.model for spec in role.fallback} <= set(declined_by)
                   for role in (self.text, self.vision, self.image))


class ShippedConcepts(Strict):
    """A folder (or file) of curated concept pairs in YAML."""

    kind: Literal["shipped"] = "shipped"
    path: Path


class QueryFileConcepts(Strict):
    """A JSONL or CSV file of harmful queries; a text model extracts two objects from each."""

    kind: Literal["queries_file"] = "queries_file"
    path: Path
    column: str = "query"
    limit: int | None = Field(default=None, ge=1)


class HFDatasetConcepts(Strict):
    """A Hugging Face dataset (name or local path) with a text column of harmful queries."""

    kind: Literal["hf_dataset"] = "hf_dataset"
    name: str
    config: str | None = None
    split: str = "train"
    column: str = "query"
    limit: int | None = Field(default=None, ge=1)


class ImageFolderConcepts(Strict):
    """A folder of unsafe images; a vision model names the objects in each."""

    kind: Literal["image_folder"] = "image_folder"
    path: Path
    limit: int | None = Field(default=None, ge=1)


class GeneratedConcepts(Strict):
    """New pairs the text model proposes per sub-category, shown a few shipped pairs as
    examples: MIS scale from the taxonomy alone, with no outside data. ``per_sub_category: 0``
    proposes none in the first round: the source then only tops up sub-categories that fall
    short of ``targets:``."""

    kind: Literal["generated"] = "generated"
    per_sub_category: int = Field(default=20, ge=0, le=10_000)
    per_request: int = Field(default=10, ge=1, le=50)
    examples: int = Field(default=4, ge=0, le=20)
    examples_path: Path | None = None  # None: the shipped pairs, or triples for 3-4 images
    sub_categories: list[str] | None = None


ConceptSource = Annotated[
    ShippedConcepts | QueryFileConcepts | HFDatasetConcepts | ImageFolderConcepts
    | GeneratedConcepts,
    Field(discriminator="kind"),
]


class ConceptsConfig(Strict):
    """Where a build's concepts come from (at least one source). ``sub_categories`` limits the
    build to those named; ``max_per_sub_category`` keeps at most that many concepts of each, a
    seeded choice."""

    sources: list[ConceptSource] = Field(min_length=1)
    max_per_sub_category: int | None = Field(default=None, ge=1)
    sub_categories: list[str] | None = None


class ImagePool(Strict):
    """Images named by object: a folder of ``<object>.png`` or a dataset with a label column.

    One shape for every pool: the image source of a build (``images:``) and the real photos of
    MIS-real (``real:``).
    """

    folder: Path | None = None
    hf_dataset: str | None = None
    hf_split: str = "train"
    image_column: str = "image"
    label_column: str = "label"

    def has_pool(self) -> bool:
        """Whether a folder or a dataset is named: without one the pool has no image to give."""
        return self.folder is not None or bool(self.hf_dataset)


class ImagesConfig(ImagePool):
    """How each object gets its image: ``typography`` renders its name, ``t2i`` asks the image
    model, ``folder`` and ``hf_dataset`` look it up in the pool. Every image is normalized to at
    most ``max_side`` pixels a side; an input over ``max_pixels`` is refused."""

    source: Literal["typography", "t2i", "folder", "hf_dataset"] = "typography"
    max_side: int = Field(default=1024, ge=64, le=8192)
    typography_size: int = Field(default=512, ge=64, le=4096)
    critique: bool = True
    max_pixels: int = Field(default=64_000_000, ge=1)

    def pool(self) -> ImagePool:
        """The pool a ``folder`` or ``hf_dataset`` source reads (the other one unset)."""
        fields = self.model_dump(include=set(ImagePool.model_fields))
        fields["hf_dataset" if self.source == "folder" else "folder"] = None
        return ImagePool.model_validate(fields)

    @model_validator(mode="after")
    def _source_has_its_pool(self) -> ImagesConfig:
        if self.source == "folder" and self.folder is None:
            raise ValueError("images.source is 'folder' but images.folder is not set")
        if self.source == "hf_dataset" and not self.hf_dataset:
            raise ValueError("images.source is 'hf_dataset' but images.hf_dataset is not set")
        return self


class InstructionsConfig(Strict):
    """The questions written per concept (MIS step 2): how many, how a question names an image
    (``ordinal``: "the first image"; ``index``: "Image-1"), the length a question must have,
    and the YAML file of phrases that would give an object away."""

    per_pair: int = Field(default=3, ge=1, le=5)  # MIS: "two or three related harmful queries" per pair
    image_ref_style: Literal["ordinal", "index"] = "ordinal"
    min_chars: int = Field(default=40, ge=1)
    max_chars: int = Field(default=300, ge=10)
    giveaway_phrases: Path = Path("giveaway_phrases.yaml")


class DedupConfig(Strict):
    """Near-duplicate samples: both images perceptually alike and the instruction nearly the same.

    Either signal alone is only flagged: MIS instructions are templated on purpose, and the
    same object may rightly appear in two samples.
    """

    enabled: bool = True
    image_hash_distance: int = Field(default=4, ge=0, le=64)
    text_jaccard: float = Field(default=0.85, ge=0.0, le=1.0)


class RealPoolConfig(ImagePool):
    """Real photos for MIS-real: a folder of ``<object>.png`` or a dataset with a label column."""

    count: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _has_a_pool(self) -> RealPoolConfig:
        if not self.has_pool():
            raise ValueError("real needs a folder or a hf_dataset of photos")
        return self


class GeneralMixConfig(Strict):
    """General multi-image instruction data mixed into train (MIS used 500 from M4-Instruct).

    A JSONL file whose rows have two image paths (``images`` or ``image``, relative to the file)
    and either ``question`` + ``answer`` or a two-turn ``conversations`` list.
    """

    path: Path
    count: int = Field(default=500, ge=1)


class LabelsConfig(Strict):
    """The safety answers; the word range is rendered into the label prompt and enforced."""

    for_test: bool = False
    min_words: int = Field(default=100, ge=1)
    max_words: int = Field(default=300, ge=10)
    harm_check: bool | None = None
    # mis: one prose answer (MIS step 5). dream: risk statements first, each naming its source
    # (an image, the text, or the combination), then the answer (DREAM-style disentangled risks).
    style: Literal["mis", "dream"] = "mis"

    @model_validator(mode="after")
    def _range(self) -> LabelsConfig:
        if self.min_words > self.max_words:
            raise ValueError("labels.min_words is above labels.max_words")
        return self


class TwinsConfig(Strict):
    """Benign twins against over-refusal: for ``ratio`` of the judged samples, a matched
    harmless counterpart with a helpful, non-refusing answer (HoliSafe's SᵢSₜ→S cell).
    ``swap_image`` replaces the harmful (or the second) object by a same-kind look-alike and
    keeps the neutral question (test-side sources); ``benign_text`` keeps both images and asks
    an ordinary question about them (sources whose images are both harmless);
    ``alarming_text`` (MMSafeAware's over-safety items, off unless listed) writes a request
    that sounds risky in words alone and new images that make it harmless (any source)."""

    ratio: float = Field(default=0.3, gt=0, le=1)
    kinds: list[Literal["swap_image", "benign_text", "alarming_text"]] = Field(
        default_factory=lambda: cast(list[Literal["swap_image", "benign_text", "alarming_text"]],
                                     ["swap_image", "benign_text"]),
        min_length=1)


class BenchmarkRef(Strict):
    """A public test set to keep out of train: a folder (the MIS test layout, a Hugging Face
    dataset folder, a plain image folder) or a Hub dataset name. ``kind`` is the CLI's ``--as``;
    left out, it is guessed from what the folder holds."""

    path: str = Field(min_length=1)
    kind: Literal["mis", "hf", "folder"] | None = None


class DecontaminateConfig(Strict):
    """Decontamination as a build step: after the labels, every train and validation image and
    question is compared with each benchmark in ``against`` (``mis-data decontaminate`` does
    the same on a finished run). With ``drop`` (the default here: a build asked to
    decontaminate means it) the matches are rejected as ``contaminated`` before the final
    splits and exports; ``drop_text`` also drops question-only matches."""

    against: list[BenchmarkRef] = Field(min_length=1)
    drop: bool = True
    drop_text: bool = False
    phash_distance: int = Field(default=4, ge=0, le=16)
    dhash_distance: int = Field(default=4, ge=0, le=16)
    text_jaccard: float = Field(default=0.9, gt=0.0, le=1.0)

    @field_validator("against", mode="before")
    @classmethod
    def _paths_as_entries(cls, value: Any) -> Any:
        """``against: [path, ...]`` is short for ``against: [{path: ...}, ...]``."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"path": item} if isinstance(item, str) else item for item in value]
        return value


class ShapedTarget(Strict):
    """A total spread over the sub-categories: ``mis`` in the proportions of MIS's Table 3 (its
    test counts; MIS published none for train, so train targets borrow them), ``uniform``
    evenly."""

    total: int = Field(ge=1)
    shape: Literal["mis", "uniform"] = "mis"


Target = int | ShapedTarget


class TargetsConfig(Strict):
    """Samples wanted per sub-category in the final splits, for train (train + val) and test
    (easy + hard). A number is per sub-category; ``{total, shape}`` spreads a total. After each
    round of the build, sub-categories under target get more concepts (the next entries of the
    shipped lists, then the ``generated`` source) until every target is met, ``max_rounds`` have
    run or the cost cap stops the build. With ``trim`` the splits keep at most the target (a
    seeded choice; the rest are excluded as ``over_target``), so the shape holds both ways."""

    train: Target | None = None
    test: Target | None = None
    max_rounds: int = Field(default=3, ge=1, le=20)
    trim: bool = True

    @model_validator(mode="after")
    def _something_wanted(self) -> TargetsConfig:
        if self.train is None and self.test is None:
            raise ValueError("targets needs train, test or both")
        return self


class SplitsConfig(Strict):
    """How the final splits are cut: ``val_size`` is the share of train moved to validation, and
    ``quotas`` caps the easy + hard samples per sub-category (not with ``targets.test``)."""

    val_size: float = Field(default=0.0, ge=0.0, lt=1.0)
    quotas: dict[str, int] | None = None


class RewriteConfig(Strict):
    """VLMGuard-R1 rewrite data (arXiv 2504.12661): for every labelled train sample, what made the
    responder's unsafe answer unsafe (hindsight), the risks by source (causal analysis) and a
    rewritten prompt that a quality gate checked with the responder and the judges; benign
    twins of train samples join with their prompt unchanged (``twins``). The responder is
    ``models.responder``, or the vision model when that is not set."""

    twins: bool = True


class RayConfig(Strict):
    """Where ``executor: ray`` runs the stages' per-item work: a running cluster at ``address``
    (``ray://host:10001``, ``auto``), or, left out, a local Ray started for the build.
    ``num_workers`` is the number of worker actors (each holds a model client and the cache);
    the run folder must be on a file system every node of the cluster sees."""

    address: str | None = None
    num_workers: int = Field(default=2, ge=1, le=1024)


ExportFormat = Literal["mis", "internvl", "llamafactory", "hf", "vlmguard", "awareness"]


class BuildConfig(OptionalFields, Strict):
    """A whole build, as its YAML file gives it; only ``concepts`` has no default. Read it with
    ``load_config``, which also applies overrides and makes its paths absolute."""

    # left out of a run's config.yaml and the generation hash while unset: a run folder is
    # written, and bound to its config, as before the option existed
    optional_fields = ("rewrite", "executor", "ray")

    name: str = "mis"
    seed: int = 0
    backend: Literal["offline", "openai"] = "offline"
    # Images per sample (MIS: 2). With 3 or 4 the concepts are tuples (object1..objectK), the
    # questions refer to "the third image" / "the fourth image", and every export has K images.
    images_per_sample: int = Field(default=2, ge=2, le=4)
    models: ModelsConfig = ModelsConfig()
    taxonomy: Path = Path("taxonomy.yaml")
    kinds: Path | None = None  # None: the shipped configs/kinds.yaml
    prompts_dir: Path = Path("../prompts")
    concepts: ConceptsConfig
    images: ImagesConfig = ImagesConfig()
    instructions: InstructionsConfig = InstructionsConfig()
    dedup: DedupConfig = DedupConfig()
    real: RealPoolConfig | None = None
    general: GeneralMixConfig | None = None
    labels: LabelsConfig = LabelsConfig()
    twins: TwinsConfig | None = None
    decontaminate: DecontaminateConfig | None = None
    targets: TargetsConfig | None = None
    splits: SplitsConfig = SplitsConfig()
    # ``awareness`` (MMSafeAware's safe/unsafe question set, export/awareness/) and ``vlmguard``
    # (with ``rewrite:``) are written only when listed.
    exports: list[ExportFormat] = Field(
        default_factory=lambda: cast(list[ExportFormat], ["mis", "internvl", "llamafactory", "hf"])
    )
    license: str = "cc-by-nc-4.0"
    rewrite: RewriteConfig | None = None  # VLMGuard-R1 rewrite data (export ``vlmguard``)
    # Where the per-item work runs: this process (left out) or Ray actors (``ray``, with the
    # optional extra ``mis-data[ray]``). It changes where, not what: off the generation hash.
    executor: Literal["local", "ray"] | None = None
    ray: RayConfig | None = None

    @model_validator(mode="after")
    def _targets_or_quotas(self) -> BuildConfig:
        if self.targets is not None and self.targets.test is not None and self.splits.quotas:
            raise ValueError("give the test size per sub-category in targets.test or in "
                             "splits.quotas, not both")
        if "vlmguard" in self.exports and self.rewrite is None:
            raise ValueError("the vlmguard export needs `rewrite:` (the rewrite data it writes)")
        if self.ray is not None and self.executor != "ray":
            raise ValueError("`ray:` is set but `executor` is not `ray`: add `executor: ray`, "
                             "or remove `ray:`")
        return self

    @property
    def on_ray(self) -> bool:
        """Whether the per-item work runs on Ray (``executor: ray``)."""
        return self.executor == "ray"

    def model_specs(self) -> list[ModelSpec]:
        """Every model this build may call, for key checks and cost reports."""
        responder = [self.models.responder] if self.models.responder is not None else []
        return [self.models.text, self.models.vision, *self.models.judges, self.models.image,
                *responder]

    def models_summary(self) -> dict[str, Any]:
        """Which model plays which role, as the manifest and the dataset card report it."""
        if self.backend == "offline":
            return {"all": "offline (templates and rules, no language model)"}
        return {"text": self.models.text.model, "vision": self.models.vision.model,
                "judges": [judge.model for judge in self.models.judges],
                "image": self.models.image.model,
                **({"responder": self.models.responder.model}
                   if self.models.responder is not None else {})}

    def generation_hash(self) -> str:
        """Hash of everything that changes what the models are asked.

        Splits, exports and decontamination are left out: they can be redone on a finished
        run with no model call, so changing them must not make the run folder refuse the config.
        """
        data = self.model_dump(mode="json", exclude={"splits", "exports", "name", "license",
                                                     "decontaminate", "targets", "executor",
                                                     "ray"})
        if data["images_per_sample"] == 2:  # runs made before the option existed still match
            del data["images_per_sample"]
        if data["models"].get("responder"):
            del data["models"]["responder"]["fallback"]
            del data["models"]["responder"]["all_down_seconds"]
            del data["models"]["responder"]["prices"]["batch"]
        # Fallback models answer only what the first model declined, and a rerun asks them for
        # what is still declined: adding one to a run's config continues the run.
        for role in ("text", "vision", "image"):
            del data["models"][role]["fallback"]
        for judge in data["models"]["judges"]:
            del judge["fallback"]
        for spec in (*(data["models"][role] for role in ("text", "vision", "image")),
                     *data["models"]["judges"]):
            del spec["all_down_seconds"]  # when to give up on a server asks nothing different
            del spec["prices"]["batch"]  # what a batch costs asks nothing different
        return sha256_text(json.dumps(data, sort_keys=True))


class RunConfig(BaseModel):
    """A run folder's ``config.yaml``: the resolved config it was built from, the sha256 of
    every prompt file, and the identity that binds the folder to both."""

    model_config = ConfigDict(extra="forbid")

    format_version: int
    config_sha256: str
    prompt_sha256: dict[str, str]
    config: BuildConfig


def read_run_config(path: Path) -> RunConfig:
    """A run folder's ``config.yaml``, checked for its format version, as one typed object."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a run config")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ConfigError(f"{path.parent}: run folder format {version} is not {FORMAT_VERSION}; "
                          "rebuild into a new --run-dir")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(path, error)) from None


def sha256_text(text: str) -> str:
    """Hex sha256 of the UTF-8 text: how prompts and configs are identified in a run folder."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks so a large file is never held whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# libyaml's parser when PyYAML was built with it: the same safe constructor, about ten times
# faster on the concept lists, which preflight, the plan and the concepts stage each read.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """YAML text parsed with only the safe constructor (as ``yaml.safe_load``)."""
    return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader: no arbitrary objects


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning every failure into a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None


def describe_validation_error(path: Path, error: ValidationError) -> str:
    """One line naming every bad key with its reason, e.g. ``concepts.max_per_sub: unknown key``."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{location}: {message}")
    return f"{path}: " + "; ".join(problems)


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value).resolve()


PoolT = TypeVar("PoolT", bound=ImagePool)


def _resolve_pool(base: Path, pool: PoolT) -> PoolT:
    """A pool's folder, and its dataset when it names a local folder, made absolute."""
    hf = pool.hf_dataset
    return pool.model_copy(update={
        "folder": _resolve(base, pool.folder),
        "hf_dataset": str((base / hf).resolve()) if hf and (base / hf).exists() else hf})


def shipped_examples(images_per_sample: int) -> str:
    """The shipped list a generated source shows as examples: pairs, or the curated triples
    for three or more images (none with four objects ships; the prompt says so)."""
    return "concepts" if images_per_sample == 2 else "concepts_k3"


def resolve_paths(config: BuildConfig, base: Path) -> BuildConfig:
    """Make every path in the config absolute, relative to the config file's folder."""
    update: dict[str, Any] = {
        "taxonomy": _resolve(base, config.taxonomy),
        "kinds": _resolve(base, config.kinds) or shipped_path("configs", "kinds.yaml"),
        "prompts_dir": _resolve(base, config.prompts_dir),
    }
    sources = []
    for source in config.concepts.sources:
        if isinstance(source, GeneratedConcepts):
            source = source.model_copy(update={"examples_path": _resolve(
                base, source.examples_path) or shipped_path("configs", shipped_examples(
                    config.images_per_sample))})
        elif hasattr(source, "path"):
            source = source.model_copy(update={"path": _resolve(base, source.path)})
        elif isinstance(source, HFDatasetConcepts) and (base / source.name).exists():
            source = source.model_copy(update={"name": str((base / source.name).resolve())})
        sources.append(source)
    update["concepts"] = config.concepts.model_copy(update={"sources": sources})
    update["images"] = _resolve_pool(base, config.images)
    update["instructions"] = config.instructions.model_copy(
        update={"giveaway_phrases": _resolve(base, config.instructions.giveaway_phrases)}
    )
    if config.real is not None:
        update["real"] = _resolve_pool(base, config.real)
    if config.general is not None:
        update["general"] = config.general.model_copy(
            update={"path": _resolve(base, config.general.path)})
    if config.decontaminate is not None:  # a folder made absolute; a Hub name (kind: hf) kept
        update["decontaminate"] = config.decontaminate.model_copy(update={"against": [
            bench.model_copy(update={"path": str((base / bench.path).resolve())})
            if bench.kind != "hf" or (base / bench.path).exists() else bench
            for bench in config.decontaminate.against]})
    return config.model_copy(update=update)


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Load, override (``--seed`` etc.), validate and resolve a build config."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    try:
        config = BuildConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(path, error)) from None
    return resolve_paths(config, path.resolve().parent)
