"""The JSON schema of every reply model is sent with each request and is part of each cache key,
so a changed schema (a field, a constraint, or only a docstring, which becomes the schema's
description) makes every cached answer of every existing run folder a miss: a resumed build asks
and pays again. This holds the schemas to a snapshot; change the snapshot only on purpose, and
say in the changelog that caches will not carry over."""

from __future__ import annotations

import hashlib
import json

import pytest

from mis_data.core.config import load_config
from mis_data.eval.protocol import JudgeOutput
from mis_data.models.wire import strict_schema
from mis_data.pipeline.plan import planning_context
from mis_data.pipeline.preflight import preflight
from mis_data.stages import TASKS
from tests.support.paths import CONFIGS, FIXTURES

SNAPSHOT = json.loads((FIXTURES / "reply_schemas.json").read_text())


def fingerprint(model: type) -> str:
    return hashlib.sha256(json.dumps(strict_schema(model), sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("config", ["demo.yaml", "demo_plus.yaml"])
def test_reply_schemas_are_unchanged(config: str) -> None:
    ctx = planning_context(preflight(load_config(CONFIGS / config), keys=False))
    now = {name: fingerprint(task.reply_model(ctx)) for name, task in sorted(TASKS.items())}
    changed = sorted(name for name in now if now[name] != SNAPSHOT[config].get(name))
    assert changed == [], f"reply schemas changed (every cached answer misses): {changed}"


def test_the_eval_judge_schema_is_unchanged() -> None:
    assert fingerprint(JudgeOutput) == SNAPSHOT["eval"]["eval_judge"]
