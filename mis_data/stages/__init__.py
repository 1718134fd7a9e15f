"""The stages of a build, bound to their steps: ``records.Step`` gives the order, this the class."""

from __future__ import annotations

from mis_data.core.records import Step
from mis_data.stages.base import Stage, WholeStage
from mis_data.stages.concepts import ConceptStage
from mis_data.stages.dedup import DedupStage
from mis_data.stages.general import GeneralStage
from mis_data.stages.images import ImageStage
from mis_data.stages.instructions import InstructionStage
from mis_data.stages.judge import JudgeStage
from mis_data.stages.labels import LabelStage
from mis_data.stages.pairs import PairStage
from mis_data.stages.real import RealStage
from mis_data.stages.twins import TwinStage

STAGES: dict[Step, type[Stage] | type[WholeStage]] = {
    Step(stage.name): stage
    for stage in (ConceptStage, InstructionStage, ImageStage, PairStage, DedupStage, JudgeStage,
                  LabelStage, TwinStage, RealStage, GeneralStage)
}
