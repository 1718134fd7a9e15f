"""A build context with nothing but a run folder, for stages that ask no model and read no
config (the runner's own tests)."""

from __future__ import annotations

from pathlib import Path

from mis_data.core.rundir import RunDir
from mis_data.stages.base import BuildContext


def bare_context(tmp_path: Path) -> BuildContext:
    """A context over the run folder ``tmp_path``; its client only reports a cost of zero."""
    class Usage:
        class total:  # noqa: N801 - mimics UsageMeter.total
            cost_usd = 0.0

    class Client:
        usage = Usage()

    return BuildContext(config=None, run=RunDir(tmp_path), taxonomy=None, prompts=None,  # type: ignore[arg-type]
                        client=Client(), store=None, show_progress=False)  # type: ignore[arg-type]
