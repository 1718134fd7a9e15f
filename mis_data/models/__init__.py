"""Model backends behind one interface (``base.ModelClient``): offline, or any OpenAI-compatible API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: ``mis_data.models.base`` alone must load fast (the CLI)
    from mis_data.core.config import BuildConfig
    from mis_data.core.prompts import PromptLibrary
    from mis_data.images.store import ImageStore
    from mis_data.models.base import ModelClient
    from mis_data.models.limits import SharedLimits


def make_client(config: BuildConfig, prompts: PromptLibrary, store: ImageStore,
                cache_path: Path, max_cost: float | None = None, batch: bool = False,
                offline_answers: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
                shared: SharedLimits | None = None) -> ModelClient:
    """The backend ``config.backend`` names; each is imported only here, so a build that never
    touches the API never loads the OpenAI SDK. ``offline_answers`` are the offline answers that
    stages declare with their own tasks (``ModelTask.offline``), beside the backend's rules;
    ``shared`` a cluster's limits (a Ray worker's client)."""
    if config.backend == "offline":
        from mis_data.models.offline import OfflineClient

        return OfflineClient(prompts, config.seed, typography_size=config.images.typography_size,
                             declared=offline_answers)
    from mis_data.models.client import OpenAIClient

    return OpenAIClient(config, store, cache_path, max_cost=max_cost, batch=batch, shared=shared)
