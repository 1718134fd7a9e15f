"""Model backends behind one interface (``base.ModelClient``): offline, or any OpenAI-compatible API."""

from __future__ import annotations

from pathlib import Path

from mis_data.config import BuildConfig, ConfigError
from mis_data.images.store import ImageStore
from mis_data.models.base import ModelClient
from mis_data.models.offline import OfflineClient
from mis_data.prompts import PromptLibrary


def check_api_keys(config: BuildConfig) -> None:
    """A real build never falls back to offline: a missing key is an error before any work."""
    if config.backend == "offline":
        return
    missing = sorted({spec.api_key_env for spec in config.model_specs() if not spec.api_key()})
    if missing:
        raise ConfigError(
            f"backend 'openai' needs the environment variable {', '.join(missing)} "
            "(set it, or use backend: offline for a keyless demo build)")


def make_client(config: BuildConfig, prompts: PromptLibrary, store: ImageStore,
                cache_path: Path, max_cost: float | None = None,
                batch: bool = False) -> ModelClient:
    if config.backend == "offline":
        return OfflineClient(prompts, config.seed, typography_size=config.images.typography_size)
    check_api_keys(config)
    from mis_data.models.client import OpenAIClient

    return OpenAIClient(config, store, cache_path, max_cost=max_cost, batch=batch)
