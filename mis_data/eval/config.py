"""The eval config: which model answers, which model judges, and which test sets it sees.

One YAML file, checked like a build config (``extra="forbid"``, one-line errors naming the key
and the file). The two models reuse the build's ``ModelSpec``; fields the user leaves unset get
MIS's own settings (docs/eval.md §4.1-4.2): the model under test answers at temperature 0 with
up to 1024 tokens, the judge at temperature 0 with up to 128. Paths follow two rules: the
prompts folder is relative to the config file (like a build's), while test sets and ``out`` are
relative to the working folder, like ``runs/`` and ``--run-dir``: a config that points at
``runs/demo/export/...`` works from the folder the build ran in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from mis_data.core.config import (
    ConfigError,
    ModelSpec,
    Strict,
    describe_validation_error,
    read_yaml,
)
from mis_data.starter import shipped_path

Split = Literal["easy", "hard", "real", "twins"]
SPLITS: tuple[Split, ...] = ("easy", "hard", "real", "twins")  # twins: benign items, scored as over-refusal
# What MIS used (docs/eval.md §4.1-4.2), applied to the fields a config leaves unset.
MODEL_DEFAULTS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 1024}
JUDGE_DEFAULTS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 128}


class TestSetSpec(Strict):
    """One test set: a MIS layout (a build's ``export/mis/mis_test`` or the released files)
    or a Hugging Face export folder (configs easy/hard/real, split ``test``)."""

    __test__ = False  # not a pytest class, despite the name

    path: Path
    name: str | None = None  # default: the folder's name
    format: Literal["auto", "mis", "hf", "awareness"] = "auto"
    splits: list[Split] = Field(default_factory=lambda: list(SPLITS))
    limit: int | None = Field(None, ge=1)  # the first N items of each split (a smoke run)

    @property
    def label(self) -> str:
        """The name tables and item keys use: ``name`` if given, else the folder's name."""
        return self.name or self.path.name


class EvalConfig(Strict):
    """One eval's settings, as ``load_eval_config`` reads them from a YAML file (unknown keys are errors)."""

    name: str
    # mis: answer, judge, score ASR/HR/RSR/RR (MIS); awareness: ask "is this request safe?" and
    # read the first word (MMSafeAware; test sets are awareness exports or run folders).
    protocol: Literal["mis", "awareness"] = "mis"
    backend: Literal["offline", "openai"] = "offline"
    seed: int = 0  # the offline backend's choices
    model: ModelSpec | None = None  # the model under test
    judge: ModelSpec = ModelSpec(model="gpt-4o", **JUDGE_DEFAULTS)
    test_sets: list[TestSetSpec] = Field(min_length=1)
    prompts_dir: Path | None = None  # None: the shipped prompts
    out: Path | None = None  # None: evals/<name>
    max_cost: float | None = Field(None, gt=0)
    image_max_side: int = Field(4096, ge=64, le=16384)  # stored copies; what is sent: max_image_side

    @model_validator(mode="after")
    def _consistent(self) -> EvalConfig:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        if self.backend == "openai" and self.model is None:
            raise ValueError("backend 'openai' needs a model (the model under test)")
        labels = [spec.label for spec in self.test_sets]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"two test sets are called {twice[0]!r}; give them a name:")
        return self

    @property
    def out_dir(self) -> Path:
        """Where the eval writes: ``out``, else ``evals/<name>`` under the working folder."""
        return self.out or Path("evals") / self.name

    def model_label(self) -> str:
        """The model under test as the tables name it: ``offline`` unless a real backend has a model."""
        return "offline" if self.backend == "offline" or self.model is None else self.model.model

    def judge_label(self) -> str:
        """The judge as the tables name it: ``offline`` for the offline backend, else its model."""
        return "offline" if self.backend == "offline" else self.judge.model

    def prompts_folder(self) -> Path:
        """The folder the judge prompt is read from: ``prompts_dir``, else the prompts shipped with the
        package."""
        return self.prompts_dir or shipped_path("prompts")


def with_defaults(data: Any, defaults: dict[str, Any]) -> Any:
    """A model mapping with MIS's settings for the keys it leaves out."""
    return {**defaults, **data} if isinstance(data, dict) else data


def load_eval_config(path: Path, overrides: dict[str, Any] | None = None) -> EvalConfig:
    """Load, override (``--out``, ``--max-cost``), validate and resolve an eval config."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    if "model" in data:
        data["model"] = with_defaults(data["model"], MODEL_DEFAULTS)
    if "judge" in data:
        data["judge"] = with_defaults(data["judge"], JUDGE_DEFAULTS)
    try:
        config = EvalConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(path, error)) from None
    if config.prompts_dir is not None and not config.prompts_dir.is_absolute():
        config = config.model_copy(
            update={"prompts_dir": (path.resolve().parent / config.prompts_dir).resolve()})
    return config


def check_keys(config: EvalConfig, source: Path) -> None:
    """A real eval never falls back to offline: a missing key fails before any file is written."""
    if config.backend == "offline":
        return
    specs = {"model": config.model,  # the awareness protocol asks no judge
             "judge": config.judge if config.protocol == "mis" else None}
    for role, spec in specs.items():
        if spec is None:
            continue
        for variable in spec.key_variables():
            if not spec.api_key(variable):
                raise ConfigError(
                    f"{source}: {role}.api_key_env: the environment variable {variable} is not "
                    "set (set it, or use backend: offline for a keyless demo eval)")


def check_test_sets(config: EvalConfig, source: Path) -> None:
    """Fail before any work when a test set's folder does not exist, naming its index in the config."""
    for index, spec in enumerate(config.test_sets):
        if not spec.path.is_dir():
            raise ConfigError(f"{source}: test_sets.{index}.path: {spec.path}: folder not found "
                              "(relative to the folder you run the command in)")
