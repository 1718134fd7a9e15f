"""The ``mis-data`` command: thin wrappers that parse options, call the library and print.

Every failure is one readable line on stderr with a non-zero exit code (2 for a bad config or
input, 1 for anything else); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mis_data.config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build multi-image safety (MIS) datasets for vision-language models.")

T = TypeVar("T")
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
RunDirArg = Annotated[Path, typer.Argument(help="A run folder made by `mis-data build`.",
                                           exists=True, file_okay=False)]


def guarded(verbose: bool, action: Callable[[], T]) -> T:
    """Run ``action``; turn any error into one line and an exit code."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.ERROR,
                        format="%(levelname)s %(message)s")
    logging.getLogger("PIL").setLevel(logging.INFO)
    try:
        return action()
    except ConfigError as error:
        if verbose:
            traceback.print_exc()
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to continue", err=True)
        raise typer.Exit(130) from None
    except Exception as error:  # the last line of defence: one line, never a bare traceback
        if verbose:
            traceback.print_exc()
        typer.echo(f"error: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None


def print_summary(stats: list[Any], manifest: dict[str, Any]) -> None:
    typer.echo("")
    typer.echo(f"{'stage':<14}{'status':<16}{'records':>9}{'rejected':>10}  rejects by reason")
    for stage, counts in manifest["stages"].items():
        stat = next((s for s in stats if s.stage == stage), None)
        status = "already done" if stat and stat.already_done else (
            f"ran {stat.pending}" if stat else "")
        reasons = ", ".join(f"{k}={v}" for k, v in counts["rejects_by_reason"].items())
        typer.echo(f"{stage:<14}{status:<16}{counts['records']:>9}{counts['rejected']:>10}"
                   f"  {reasons}")
    typer.echo("")
    splits = manifest["splits"]
    typer.echo("splits: " + ", ".join(f"{name}={data['total']}" for name, data in splits.items()))
    usage = manifest["usage"].get("total", {})
    typer.echo(f"backend: {manifest['backend']}; requests this run folder: "
               f"{int(usage.get('requests', 0))}, cost ${usage.get('cost_usd', 0.0):.4f}")


@app.command()
def build(
    config: Annotated[Path, typer.Option("--config", "-c", help="The build config (YAML).")],
    run_dir: Annotated[Path | None, typer.Option(
        help="Where the run folder goes (default: runs/<config name>).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the config's seed.")] = None,
    max_cost: Annotated[float | None, typer.Option(
        help="Stop cleanly before spending more than this many USD (real backends).")] = None,
    batch: Annotated[bool, typer.Option(
        help="Send model requests through the Batch API (real backends).")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: Verbose = False,
) -> None:
    """Run every stage that is not done yet, then write splits, exports and the manifest."""
    from mis_data.pipeline import build as run_build
    from mis_data.pipeline import prepare

    def action() -> None:
        ctx = prepare(config, run_dir, seed=seed, max_cost=max_cost, batch=batch,
                      show_progress=progress)
        result = run_build(ctx)
        print_summary(result.stats, result.manifest)
        typer.echo(f"run folder: {ctx.run.path}")

    guarded(verbose, action)


@app.command()
def info(run_dir: RunDirArg, verbose: Verbose = False) -> None:
    """What a run folder holds: backend, counts per stage and split, rejects by stage and reason."""
    from mis_data.report import info_text

    guarded(verbose, lambda: typer.echo(info_text(run_dir)))


def main() -> None:  # pragma: no cover - entry point for `python -m mis_data`
    app(prog_name="mis-data")
    sys.exit(0)
