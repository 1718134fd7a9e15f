"""The model tasks stages declare are the ones the offline backend answers and the plan prices:
a task added to a stage without an offline answer, or a plan row naming a task no stage sends,
fails here instead of in a user's build."""

from __future__ import annotations

from mis_data.core.config import load_config
from mis_data.core.prompts import PromptLibrary
from mis_data.models.offline.client import OfflineClient
from mis_data.pipeline.plan import make_plan
from mis_data.stages import STAGES, TASKS
from tests.support.paths import CONFIGS

# image rows; twins' two text tasks as one; the rewrite responder's free-text answers
PLAN_ONLY = {"generate_image", "twin_object_or_question", "rewrite_respond"}


def test_every_declared_task_has_an_offline_answer_and_no_other() -> None:
    config = load_config(CONFIGS / "demo.yaml")
    client = OfflineClient(PromptLibrary(config.prompts_dir), seed=0, declared={
        name: task.offline for name, task in TASKS.items() if task.offline})
    assert set(client.handlers()) == set(TASKS)


def test_every_task_names_a_prompt_file_that_ships() -> None:
    prompts = PromptLibrary(load_config(CONFIGS / "demo.yaml").prompts_dir)
    for task in TASKS.values():
        assert prompts.get(task.prompt).text.strip(), task.name


def test_the_plan_prices_only_declared_tasks() -> None:
    for name in ("demo.yaml", "demo_plus.yaml", "demo_seeds.yaml", "openai_mis_scale.yaml"):
        plan = make_plan(load_config(CONFIGS / name))
        assert {row.task for row in plan.rows} - PLAN_ONLY <= set(TASKS), name


def test_stages_run_in_step_order_then_extra_stages_after_their_step() -> None:
    assert list(STAGES)[:3] == ["concepts", "instructions", "images"]
    assert all(task.name in TASKS for stage in STAGES.values() for task in stage.tasks)
