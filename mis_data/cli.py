"""The ``mis-data`` command: thin wrappers that parse options, call the library and print.

Every failure is one readable line on stderr with a non-zero exit code (2 for a bad config or
input, 3 for the --max-cost cap, 4 when every server of a model role is down, 5 for a folder
another mis-data process is writing, 1 for anything else); ``--verbose`` adds the traceback.

Every command that writes a run or eval folder holds its lock (``mis_data.core.lock``) while it does,
taken before the command's slow imports (the exporters pull in pyarrow), so that a second
writer is refused within a second.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mis_data.core.config import ConfigError
from mis_data.core.lock import FolderInUse
from mis_data.models.base import BudgetExceeded, ServersDown

if TYPE_CHECKING:
    from mis_data.pipeline.preflight import Checked

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
    except BudgetExceeded as error:
        typer.echo(f"stopped: {error}", err=True)
        raise typer.Exit(3) from None
    except ServersDown as error:
        typer.echo(f"stopped: {error}", err=True)
        raise typer.Exit(4) from None
    except FolderInUse as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(5) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to continue", err=True)
        raise typer.Exit(130) from None
    except Exception as error:  # the last line of defence: one line, never a bare traceback
        if verbose:
            traceback.print_exc()
        typer.echo(f"error: {type(error).__name__}: {error}{rerun_hint(error)}", err=True)
        raise typer.Exit(1) from None


NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def rerun_hint(error: Exception) -> str:
    """A full disk or a file-size limit cut a write: what was written before it is whole."""
    if isinstance(error, OSError) and error.errno in NO_ROOM:
        return "; finished work is kept: make room and run the same command again"
    return ""


def locked(run_dir: Path, command: str, action: Callable[[], T]) -> Callable[[], T]:
    """``action`` holding the run folder's lock; it does its own (slow) imports, after the lock."""
    def run() -> T:
        from mis_data.core.rundir import lock_run

        with lock_run(run_dir, command):
            return action()

    return run


def print_summary(stats: list[Any], manifest: dict[str, Any]) -> None:
    """The end-of-build report: per stage its status, records and rejects by reason, then the splits, a
    hint to rerun when transient errors dropped items, and the usage."""
    typer.echo("")
    typer.echo(f"{'stage':<14}{'status':<26}{'records':>9}{'rejected':>10}  rejects by reason")
    for stage, counts in manifest["stages"].items():
        runs = [s for s in stats if s.stage == stage]  # one per round with targets
        ran = sum(s.pending for s in runs if not s.already_done)
        note = next((s.note for s in runs if s.note), "")
        status = (note or (f"ran {ran}" if ran else "already done")) if runs else ""
        reasons = ", ".join(f"{k}={v}" for k, v in counts["rejects_by_reason"].items())
        typer.echo(f"{stage:<14}{status:<26}{counts['records']:>9}{counts['rejected']:>10}"
                   f"  {reasons}")
    typer.echo("")
    splits = manifest["splits"]
    typer.echo("splits: " + ", ".join(f"{name}={data['total']}" for name, data in splits.items()))
    usage = manifest["usage"].get("total", {})
    transient = sum(counts["rejects_by_reason"].get("api_error", 0)
                    for counts in manifest["stages"].values())
    if transient:
        typer.echo(f"{transient} item(s) failed on transient server errors (api_error): run the same "
                   "command again to retry them")
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
    shard: Annotated[str | None, typer.Option(
        help="Build only shard i of N (0 <= i < N: e.g. $SLURM_ARRAY_TASK_ID/4), in a run "
             "folder of its own; `mis-data merge` joins the N shards.")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask before a build whose plan costs more than --confirm-above.")
    ] = False,
    confirm_above: Annotated[float, typer.Option(
        help="Ask (or, not on a terminal, stop) before a build planned above this many USD, "
             "unless --yes or --max-cost is given.")] = 5.0,
    verbose: Verbose = False,
) -> None:
    """Print the plan, then run every stage that is not done yet, then write splits, exports
    and the manifest."""

    def action() -> None:
        from mis_data.core.config import load_config
        from mis_data.core.lock import check_free
        from mis_data.core.rundir import run_path
        from mis_data.pipeline.preflight import check_api_keys, preflight

        resolved = load_config(config, {"seed": seed})  # the one load of this command
        check_free(run_path(resolved, run_dir, part))  # another build writes it: say so at once
        if resolved.images.source == "typography":
            from mis_data.images.workers import start_workers

            start_workers()  # the drawing processes start while the build's libraries load
        check_api_keys(resolved)  # a missing key is the first thing to hear about
        plan_and_build(preflight(resolved, keys=False))  # the keys were just checked

    def plan_and_build(checked: Checked) -> None:
        from mis_data.core.rundir import write_json_atomic
        from mis_data.pipeline.plan import PLAN_FILE, make_plan
        from mis_data.pipeline.runner import build as run_build
        from mis_data.pipeline.runner import prepare

        plan = make_plan(checked, batch=batch)
        for line in plan.lines():
            typer.echo(line)
        # --max-cost is a spending decision of its own: the build stops cleanly at the cap.
        confirm_cost(plan.cost, confirm_above, yes or max_cost is not None)
        ctx = prepare(checked, run_dir, max_cost=max_cost, batch=batch, show_progress=progress,
                      shard=part)
        write_json_atomic(ctx.run.path / PLAN_FILE, plan.as_dict())
        result = run_build(ctx)
        for line in result.skipped_decisions:
            typer.echo(f"skipped decision: {line}", err=True)
        for line in result.warnings:
            typer.echo(f"warning: {line}", err=True)
        print_summary(result.stats, result.manifest)
        typer.echo(f"run folder: {ctx.run.path}")

    from mis_data.core.ids import Shard

    part = guarded(verbose, lambda: Shard.parse(shard)) if shard is not None else None
    guarded(verbose, action)


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="The new run folder of the whole build.")],
    shards: Annotated[list[Path], typer.Argument(help="The shards' run folders (all N).")],
    verbose: Verbose = False,
) -> None:
    """Join the run folders of a sharded build (`build --shard i/N`) into one, and make its
    splits, exports and manifest as a single build of the same config would."""

    def action() -> None:
        from mis_data.pipeline.merge import merge as merge_runs

        result = merge_runs(out, shards)
        typer.echo(f"merged {len(result.shards)} shards; near-duplicates dropped over all "
                   f"pairs: {result.dropped_across}")
        print_summary(result.stats, result.manifest)
        typer.echo(f"run folder: {result.run.path}")

    guarded(verbose, action)


def confirm_cost(cost: float, threshold: float, yes: bool) -> None:
    """Go on below the threshold or with --yes; ask on a terminal; otherwise stop, clearly."""
    if yes or cost <= threshold:
        return
    question = f"the plan costs about ${cost:.2f}, above --confirm-above ${threshold:.2f}"
    if not sys.stdin.isatty():
        raise ConfigError(f"{question}; not on a terminal, so nothing was started. Rerun with "
                          "--yes to build, or raise --confirm-above")
    if not typer.confirm(f"{question}. Build?", default=False):
        raise ConfigError("build not started")


@app.command()
def plan(
    config: Annotated[Path, typer.Option("--config", "-c", help="The build config (YAML).")],
    assume: Annotated[list[str] | None, typer.Option(
        help="Override an assumption, NAME=VALUE (e.g. train_share=0.5); repeatable.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    batch: Annotated[bool, typer.Option(
        help="Price chat requests as the Batch API bills them (build --batch).")] = False,
    verbose: Verbose = False,
) -> None:
    """Before any call: requests per stage and model, input (text + image) and output tokens,
    dollars and time at the configured limits, with the assumptions it rests on."""
    from mis_data.core.rundir import dump_json
    from mis_data.pipeline.plan import Assumptions, plan_config

    def action() -> None:
        made = plan_config(config, Assumptions.parse(assume or []), batch=batch)
        typer.echo(dump_json(made.as_dict()) if as_json else "\n".join(made.lines()))

    guarded(verbose, action)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where the new project goes (created if needed).")],
    force: Annotated[bool, typer.Option(help="Overwrite files that already exist.")] = False,
    verbose: Verbose = False,
) -> None:
    """Write a starter project (the shipped configs and prompts) to edit and build from."""
    from mis_data.starter import write_starter

    def action() -> None:
        try:
            written = write_starter(folder, force=force)
        except FileExistsError as error:
            raise ConfigError(str(error)) from None
        typer.echo(f"wrote {len(written)} files to {folder}")
        typer.echo(f"next: mis-data build --config {folder / 'configs' / 'demo.yaml'}")

    guarded(verbose, action)


@app.command()
def info(run_dir: RunDirArg, verbose: Verbose = False) -> None:
    """What a run folder holds: backend, counts per stage and split, rejects by stage and reason."""
    from mis_data.reports.info import info_text

    guarded(verbose, lambda: typer.echo(info_text(run_dir)))


@app.command()
def stats(run_dir: RunDirArg, verbose: Verbose = False) -> None:
    """Counts per split and sub-category, rejects, refusal rates, tokens and cost, plus a plot."""
    from mis_data.reports.stats import write_stats

    guarded(verbose, lambda: typer.echo(write_stats(run_dir).text))


@app.command()
def review(
    run_dir: RunDirArg,
    out: Annotated[Path | None, typer.Option(
        help="Where the HTML goes (default: RUN_DIR/review/index.html).")] = None,
    serve: Annotated[bool, typer.Option(
        help="Serve the gallery on 127.0.0.1 and save decisions to RUN_DIR/decisions.jsonl as "
             "they are made.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (0: any free port).")] = 0,
    verbose: Verbose = False,
) -> None:
    """Write the review gallery (every sample and reject, filterable, with keep/drop/move and
    tie decisions) to open in a browser; --serve also saves decisions into the run folder."""
    from mis_data.core.decision_log import DECISIONS, read_decisions
    from mis_data.reports.review import write_review

    def action() -> None:
        if serve and out is not None:
            raise ConfigError("--serve shows the gallery in RUN_DIR/review; leave out --out")
        page = write_review(run_dir, out)
        typer.echo(f"review: {page}")
        for problem in read_decisions(Path(run_dir) / DECISIONS)[1]:
            typer.echo(f"skipped decision: {problem}", err=True)
        if not serve:
            typer.echo("decisions: download them from the page, then `mis-data apply-decisions "
                       f"{run_dir} decisions.jsonl`")
            return
        from mis_data.reports.review.serve import serve as make_server

        server = make_server(run_dir, port)
        typer.echo(f"serving {server.url} (127.0.0.1 only; Ctrl-C to stop); decisions go to "
                   f"{Path(run_dir) / 'decisions.jsonl'}")
        try:
            server.serve_forever()
        finally:
            server.server_close()

    guarded(verbose, action)


# -- evaluating a model on MIS ----------------------------------------------------------------

eval_app = typer.Typer(
    add_completion=False, no_args_is_help=False, invoke_without_command=True,
    help="Score a vision-language model on MIS test sets (ASR / HR / RSR / RR), or on an "
         "awareness export with --protocol awareness (MMSafeAware: is the request safe?).\n\n"
         "`mis-data eval --config EVAL.yaml` runs (or resumes) an eval into evals/<name>/; "
         "`mis-data eval compare evals/a evals/b` sets finished evals side by side.")
app.add_typer(eval_app, name="eval")


@eval_app.callback()
def eval_command(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="The eval config (YAML): model under test, judge, test sets.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="The eval folder (default: evals/<name>).")] = None,
    protocol: Annotated[str | None, typer.Option(
        help="mis (answer, judge, ASR/HR/RSR/RR) or awareness (ask whether the request is safe, "
             "score the first word Yes/No); default: the config's protocol, else mis.")] = None,
    max_cost: Annotated[float | None, typer.Option(
        help="Stop cleanly before spending more than this many USD.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    verbose: Verbose = False,
) -> None:
    """Answer every test item with the model under test, judge each answer as MIS does, and
    print ASR / HR / RSR / RR per split, category and sub-category; or, with the awareness
    protocol, ask whether each request is safe and print the unsafe-called-safe and
    benign-called-unsafe rates (the sub-app's help is the text users see)."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from mis_data.eval.runner import run_eval

    def action() -> int:
        if protocol is not None and protocol not in ("mis", "awareness"):
            raise ConfigError(f"--protocol {protocol!r}: expected mis or awareness")
        result = run_eval(config, out=out, max_cost=max_cost, progress=progress,
                          protocol=protocol)
        typer.echo(result.table)
        usage = result.usage.get("total", {})
        typer.echo(f"requests this eval folder: {int(usage.get('requests', 0))}, "
                   f"cost ${usage.get('cost_usd', 0.0):.4f}")
        typer.echo(f"eval folder: {result.out} (scores.json, scores.png)")
        if result.nothing_scored:
            typer.echo(f"error: {result.nothing_scored}", err=True)
            return 1
        if result.hint:
            typer.echo(result.hint)
        return 0

    code = guarded(verbose, action)
    if code:
        raise typer.Exit(code)


@eval_app.command("compare")
def eval_compare(
    folders: Annotated[list[Path], typer.Argument(
        help="Eval folders (each with scores.json); later ones are compared with the first.",
        exists=True, file_okay=False)],
    plot: Annotated[Path | None, typer.Option(
        help="Where the plot goes (default: compare-<a>-vs-<b>.png beside the first folder).")] = None,
    verbose: Verbose = False,
) -> None:
    """One table and one plot of several evals, with each split's difference from the first."""
    from mis_data.eval.compare import compare_table, write_compare_plot

    def action() -> None:
        if len(folders) < 2:
            raise ConfigError("compare needs at least two eval folders")
        text, all_scores = compare_table(folders)
        target = plot or folders[0].parent / (
            "compare-" + "-vs-".join(folder.name for folder in folders) + ".png")
        write_compare_plot(folders, all_scores, target)
        typer.echo(text)
        typer.echo(f"plot: {target}")

    guarded(verbose, action)


def main() -> None:  # pragma: no cover - entry point for `python -m mis_data`
    """Run the command line as ``mis-data``, exiting 0 if the app returns without exiting."""
    app(prog_name="mis-data")
    sys.exit(0)


# -- after a build: splits, exports, validation, upload (no model is called) ----------------

def parse_formats(text: str | None) -> list[str] | None:
    """``mis,hf`` -> ["mis", "hf"]; an unknown name is a one-line config error."""
    from mis_data.export import EXPORTERS

    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ConfigError(f"unknown format(s) {', '.join(unknown)} (known: {', '.join(EXPORTERS)})")
    return names


def print_exported(manifest: dict[str, Any], formats: list[str]) -> None:
    """How many files each requested export format wrote, from the manifest's file list."""
    files = manifest.get("exported_files", {})
    for name in formats:
        count = sum(1 for path in files if path.startswith(f"{name}/"))
        typer.echo(f"export/{name}: {count} files")


@app.command()
def split(
    run_dir: RunDirArg,
    seed: Annotated[int | None, typer.Option(help="Split seed (default: the run's seed).")] = None,
    val_size: Annotated[float | None, typer.Option(
        help="Fraction of train moved to validation (default: the run's splits.val_size).")] = None,
    verbose: Verbose = False,
) -> None:
    """Regenerate the splits of a finished run and rewrite its exports; no model is called."""

    def action() -> None:
        from mis_data.pipeline.finish import finish_run, open_finished_run

        if val_size is not None and not 0.0 <= val_size < 1.0:
            raise ConfigError(f"--val-size {val_size}: must be at least 0 and below 1")
        run, config, store = open_finished_run(run_dir)
        manifest = finish_run(run, config, store, seed=seed, val_size=val_size)
        plan = manifest["split_plan"]
        typer.echo("splits: " + ", ".join(f"{k}={v}" for k, v in plan["counts"].items()))
        excluded = plan["excluded_by_reason"]
        typer.echo("excluded: " + (", ".join(f"{k}={v}" for k, v in excluded.items()) or "none"))
        print_exported(manifest, list(config.exports))

    guarded(verbose, locked(run_dir, "split", action))


@app.command()
def export(
    run_dir: RunDirArg,
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="Comma-separated: mis,internvl,llamafactory,hf,vlmguard,"
        "awareness (default: all; vlmguard with `rewrite:`).")] = None,
    absolute_paths: Annotated[bool, typer.Option(
        "--absolute-paths", help="Write absolute image paths (and InternVL root/annotation) into the "
        "InternVL and LLaMA-Factory/ms-swift files, to train from any folder.")] = False,
    verbose: Verbose = False,
) -> None:
    """Rewrite exports from the current splits and update the manifest's file hashes."""

    def action() -> None:
        from mis_data.export import EXPORTERS
        from mis_data.pipeline.finish import finish_run, open_finished_run

        run, config, store = open_finished_run(run_dir)
        formats = parse_formats(format) or [  # vlmguard only for a run with rewrite data
            name for name in EXPORTERS if name != "vlmguard" or config.rewrite is not None]
        manifest = finish_run(run, config, store, formats=formats, resplit=False,
                              absolute_paths=absolute_paths)
        print_exported(manifest, formats)

    guarded(verbose, locked(run_dir, "export", action))


@app.command("apply-decisions")
def apply_decisions_command(
    run_dir: RunDirArg,
    decisions: Annotated[Path | None, typer.Argument(
        help="A decisions file downloaded from the gallery; its new lines are added to "
             "RUN_DIR/decisions.jsonl first (default: only RUN_DIR/decisions.jsonl).")] = None,
    verbose: Verbose = False,
) -> None:
    """Apply reviewers' decisions (drops, moves, resolved ties), then rewrite splits, exports
    and manifest; no model is called. Applying the same decisions again changes nothing."""

    def action() -> None:
        from mis_data.core.decision_log import DECISIONS
        from mis_data.core.taxonomy import load_taxonomy
        from mis_data.pipeline.decisions import apply_decisions, import_decisions
        from mis_data.pipeline.finish import finish_run, open_finished_run

        run, config, store = open_finished_run(run_dir)
        if decisions is not None:
            added, problems = import_decisions(run, decisions)
            typer.echo(f"{decisions}: {added} new decision(s) added to {DECISIONS}")
            for problem in problems:
                typer.echo(f"skipped: {problem}", err=True)
        elif not (run.path / DECISIONS).exists():
            raise ConfigError(f"{run.path / DECISIONS}: no decisions yet; mark samples in "
                              "`mis-data review` and download or --serve them")
        taxonomy = load_taxonomy(config.taxonomy)
        report = apply_decisions(run, taxonomy)
        for line in report.lines():
            typer.echo(line)
        manifest = finish_run(run, config, store, taxonomy=taxonomy)
        plan = manifest["split_plan"]
        typer.echo("splits: " + ", ".join(f"{k}={v}" for k, v in plan["counts"].items()))
        print_exported(manifest, list(config.exports))

    guarded(verbose, locked(run_dir, "apply-decisions", action))


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="An export folder (or a run folder with --format).",
                                         exists=True)],
    format: Annotated[str | None, typer.Option(
        "--format", "-f",
        help="mis | internvl | llamafactory | hf | vlmguard | awareness (default: guessed).")] = None,
    taxonomy: Annotated[Path | None, typer.Option(
        help="Taxonomy for MIS category checks (default: the shipped configs/taxonomy.yaml).")] = None,
    media_dir: Annotated[Path | None, typer.Option(
        help="LLaMA-Factory media_dir for image paths (default: the dataset_info folder).")] = None,
    images: Annotated[int | None, typer.Option(
        min=2, max=4, help="Images every row must have (default: the run's images_per_sample, "
                           "else as many as the first row).")] = None,
    verbose: Verbose = False,
) -> None:
    """Check a folder against a format's loading rules; list every problem, exit 1 if any.

    Warnings (e.g. relative paths that resolve from one folder only) are listed too, exit 0.
    """
    from mis_data.core.taxonomy import load_taxonomy
    from mis_data.export.validate import FORMATS
    from mis_data.export.validate import validate as run_validate
    from mis_data.starter import shipped_path

    def action() -> int:
        if format is not None and format not in FORMATS:
            raise ConfigError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
        wanted = taxonomy or shipped_path("configs", "taxonomy.yaml")
        fmt, report = run_validate(path, format, load_taxonomy(wanted), media_dir, images)
        for problem in report.problems:
            typer.echo(problem)
        for warning in report.warnings:  # loads only under a condition; not a failure
            typer.echo(f"warning: {warning}")
        if report.problems:
            typer.echo(f"{len(report.problems)} problem(s) in {report.records} {fmt} records", err=True)
            return 1
        per_row = f", {report.images_per_row} images each" if report.images_per_row else ""
        typer.echo(f"ok: {report.records} records checked ({fmt}){per_row}")
        return 0

    code = guarded(verbose, action)
    if code:
        raise typer.Exit(code)


@app.command()
def decontaminate(
    run_dir: RunDirArg,
    against: Annotated[str, typer.Option(
        help="A benchmark: a MIS test layout, a Hugging Face dataset (folder or name), an image folder.")],
    kind: Annotated[str | None, typer.Option(
        "--as", help="mis | hf | folder (default: guessed from the path).")] = None,
    drop: Annotated[bool, typer.Option(
        help="Reject the train samples whose images match, then rewrite splits and exports.")] = False,
    drop_text: Annotated[bool, typer.Option(
        help="With --drop, also reject samples whose question alone matches.")] = False,
    phash_distance: Annotated[int, typer.Option(help="Bits of pHash that may differ.")] = 4,
    dhash_distance: Annotated[int, typer.Option(help="Bits of dHash that may differ.")] = 4,
    text_jaccard: Annotated[float, typer.Option(help="Word overlap that counts a question.")] = 0.9,
    verbose: Verbose = False,
) -> None:
    """Find train images and questions that also appear in a test set; optionally drop them."""

    def action() -> None:
        from mis_data.pipeline.decontaminate import decontaminate as run_decontaminate
        from mis_data.pipeline.decontaminate import unreadable_lines
        from mis_data.pipeline.finish import finish_run, open_finished_run

        result = run_decontaminate(run_dir, against, kind, drop=drop, drop_text=drop_text,
                                   phash_distance=phash_distance, dhash_distance=dhash_distance,
                                   text_threshold=text_jaccard)
        for line in unreadable_lines(result):
            typer.echo(f"warning: {line}", err=True)
        images = {m["id"] for m in result["matches"]}
        typer.echo(f"{result['train_images']} train images against {result['benchmark_images']} "
                   f"benchmark images ({result['as']}): {len(result['matches'])} image matches in "
                   f"{len(images)} samples, {len(result['text_matches'])} question matches; "
                   f"{len(result['unreadable'])} unreadable benchmark item(s) skipped; "
                   f"{result['images_per_second']} images/s")
        typer.echo(f"report: {Path(run_dir) / 'decontamination.json'}")
        if result["newly_dropped"]:
            run, config, store = open_finished_run(run_dir)
            manifest = finish_run(run, config, store)
            typer.echo(f"dropped {len(result['newly_dropped'])} samples as contaminated; splits: "
                       + ", ".join(f"{k}={v}" for k, v in manifest["split_plan"]["counts"].items()))

    guarded(verbose, locked(run_dir, "decontaminate", action))


@app.command()
def push(
    run_dir: RunDirArg,
    repo: Annotated[str, typer.Option(help="The dataset repository, OWNER/NAME.")],
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would be uploaded; upload nothing.")] = False,
    verbose: Verbose = False,
) -> None:
    """Upload export/hf to the Hugging Face Hub (token from HF_TOKEN only)."""
    from mis_data.export.hub import push as push_folder

    def action() -> None:
        result = push_folder(run_dir, repo, private=private, dry_run=dry_run)
        for name, size in result.files:
            typer.echo(f"{size:>12,}  {name}")
        typer.echo(f"{result.total_bytes:>12,}  total, {len(result.files)} files")
        if result.uploaded:
            typer.echo(f"uploaded to {result.url}")
        else:
            typer.echo(f"dry run: nothing uploaded to {repo}")

    guarded(verbose, action)
