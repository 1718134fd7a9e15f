"""The stages of a build, found in this package: the one list the runner, the plan and the tests
read.

Each stage is a class in a module of its own here (``Stage`` or ``WholeStage``) naming its step
and declaring the model tasks it sends (``ModelTask``); modules shared by several stages (the
judges' panel, drawing) declare theirs as ``TASKS``. ``records.Step`` gives the order of the
built-in steps, which every run folder's files are named after; a stage whose name is not a
``Step`` runs right after the step it names in ``after``. Adding a stage is its module, its
prompt and its test: nothing here or in the plan changes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from mis_data.core.records import STEP_NAMES, Step
from mis_data.stages.base import ModelTask, Stage, WholeStage

StageClass = type[Stage] | type[WholeStage]


def _modules() -> list[object]:
    return [importlib.import_module(f"{__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name)]


def _stage_classes(modules: list[object]) -> dict[str, StageClass]:
    found: dict[str, StageClass] = {}
    for module in modules:
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Stage | WholeStage)
                    and value.__module__ == getattr(module, "__name__", None)
                    and not inspect.isabstract(value)):
                if value.name in found:
                    raise TypeError(f"two stages are named {value.name!r}: {found[value.name]} "
                                    f"and {value}")
                found[value.name] = value
    return found


def _in_order(found: dict[str, StageClass]) -> dict[str, StageClass]:
    missing = [step.value for step in Step if step.value not in found]
    if missing:
        raise TypeError(f"no stage class for step(s) {', '.join(missing)}")
    order = list(STEP_NAMES)
    extra = [name for name in found if name not in order]
    while extra:
        placed = [name for name in extra if found[name].after in order]
        if not placed:
            raise TypeError(f"stage(s) {', '.join(extra)} name no known step to run after")
        for name in placed:
            position = order.index(str(found[name].after)) + 1
            while position < len(order) and order[position] not in STEP_NAMES:
                position += 1  # after the stages already placed behind the same step
            order.insert(position, name)
            extra.remove(name)
    return {name: found[name] for name in order}


def _tasks(modules: list[object], stages: dict[str, StageClass]) -> dict[str, ModelTask]:
    found: dict[str, ModelTask] = {}
    declared = [task for stage in stages.values() for task in stage.tasks]
    declared += [task for module in modules for task in getattr(module, "TASKS", ())]
    for task in declared:
        if found.get(task.name, task) is not task:
            raise TypeError(f"two model tasks are named {task.name!r}")
        found[task.name] = task
    return found


_MODULES = _modules()
# Every stage by name, in the order a build runs them.
STAGES: dict[str, StageClass] = _in_order(_stage_classes(_MODULES))
# Every model task any stage sends, by name: what the plan and the offline backend answer to.
TASKS: dict[str, ModelTask] = _tasks(_MODULES, STAGES)
