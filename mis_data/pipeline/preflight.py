"""Everything about a build config that can be checked before a single file is written.

Rules between fields of the config itself (``images.source: folder`` needs ``images.folder``)
are pydantic validators in ``config.py``: they fail while the YAML is read. What needs the
world outside the file is checked here, once: the taxonomy and kinds load, every sub-category
the config names exists, every file and folder it points to is there and opens (concept
sources, image pools, the general mix, giveaway phrases, prompts, decontamination benchmarks)
and is not empty (a concept source that yields nothing would build an empty dataset with exit
0, an empty prompt file would be sent as is), and every API key is set. A broken config
therefore ends with one line and an empty run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mis_data.core.config import BuildConfig, ConfigError, load_config
from mis_data.core.prompts import check_prompt_files
from mis_data.core.taxonomy import Kind, Taxonomy, load_kinds, load_taxonomy
from mis_data.images.sources import ObjectImages, check_source
from mis_data.pipeline.decontaminate import check_benchmark


@dataclass(frozen=True)
class Checked:
    """A config that passed every check, with what the checks loaded on the way: the one
    object a command passes on, so nothing loads or checks the config a second time."""

    config: BuildConfig
    taxonomy: Taxonomy
    kinds: dict[str, Kind]


def check_api_keys(config: BuildConfig) -> None:
    """A real build never falls back to offline: a missing key is an error before any work."""
    if config.backend == "offline":
        return
    missing = sorted({variable for spec in config.model_specs() for variable in spec.key_variables()
                      if not spec.api_key(variable)})
    if missing:
        raise ConfigError(
            f"backend 'openai' needs the environment variable {', '.join(missing)} "
            "(set it, or use backend: offline for a keyless demo build)")


def check_references(config: BuildConfig, taxonomy: Taxonomy) -> None:
    """Every sub-category the config names exists."""
    named = list(config.concepts.sub_categories or []) + list(config.splits.quotas or {})
    for name in named:
        if taxonomy.canonical(name) is None:
            raise ConfigError(f"unknown sub-category {name!r} in the config "
                              f"(known: {', '.join(taxonomy.sub_category_names)})")


def check_files(config: BuildConfig) -> None:
    """Every outside input the config names exists and opens."""
    check_prompt_files(config.prompts_dir)
    if not config.instructions.giveaway_phrases.is_file():
        raise ConfigError(f"{config.instructions.giveaway_phrases}: giveaway phrase list not found")
    for source in config.concepts.sources:
        check_source(source)
    if config.images.source in ("folder", "hf_dataset"):
        ObjectImages(config.images.pool()).check()
    if config.real is not None:
        ObjectImages(config.real).check()
    if config.general is not None and not config.general.path.is_file():
        raise ConfigError(f"{config.general.path}: general data file not found")
    for bench in config.decontaminate.against if config.decontaminate else []:
        check_benchmark(bench.path, bench.kind)


def preflight(config: BuildConfig, keys: bool = True) -> Checked:
    """Check everything outside the config file; raise ConfigError on the first problem.

    ``keys=False`` for a plan, which must work before a key is set.
    """
    taxonomy = load_taxonomy(config.taxonomy)
    kinds = load_kinds(config.kinds) if config.kinds else {}
    check_references(config, taxonomy)
    check_files(config)
    if keys:
        check_api_keys(config)
    return Checked(config=config, taxonomy=taxonomy, kinds=kinds)


def load_checked(path: Path, overrides: dict[str, Any] | None = None, keys: bool = True) -> Checked:
    """Read a build config and check it: what every command that builds or plans starts with."""
    return preflight(load_config(path, overrides), keys=keys)
