"""`himl`: see and steer runs from a terminal, on the local backend and AzureML alike.

Exit codes: as every console script's (`himl_tasks.cli.exit_codes`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from himl_tasks.backends.base import Backend
from himl_tasks.cli.exit_codes import EXIT_FAILURE, EXIT_INTERRUPTED, exit_code_of
from himl_tasks.cli.pipeline_rows import pipeline_steps_or_none, pipelines_among, step_row
from himl_tasks.cli.rows import COLUMNS, status_row
from himl_tasks.cli.run_patterns import select_run, select_runs
from himl_tasks.cli.workspace import AzureMLSdkChoice, WorkspaceChoice, backend_for_command
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import HimlError, InvalidInputError
from himl_tasks.jobs.pipeline_submission import pipeline_to_resubmit
from himl_tasks.metric_curves import format_number, metric_curves
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.runs import RunRef

DEFAULT_FOLLOW_SECONDS = 24 * 3600.0

HELP = """See and steer runs on any backend: status, cancel, resubmit, logs, results, metrics.

PATTERN names runs: 'all'; a run id or recovery id (experiment:run_id); an experiment, display
name or tag (key=value, or the value) by prefix, or by glob with * ? [ ]; or a job folder
holding most_recent_run.txt (a folder prefix or glob finds many).

The workspace: --workspace, before or after the command (a local workspace folder, an AzureML
config.json, or a saved workspace block's name, local-workspace/NAME or azureml-workspace/NAME,
read from the Prefect API at PREFECT_API_URL), else the library's order: config.json found
upward, HIML_* variables, then $HIML_HOME or ./.himl.

Exit codes: 0 done, 1 failed or found nothing, 2 bad usage, 130 interrupted.
"""

app = typer.Typer(
    help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
)
# Piped output (scripts, `| less`) is not cut to 80 columns; a terminal's width is its own.
PIPED_WIDTH = 250


class _Consoles:
    """stdout and stderr consoles, made when used: a test runner swaps sys.stdout per call."""

    @property
    def out(self) -> Console:
        return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)

    @property
    def err(self) -> Console:
        return Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)


_consoles = _Consoles()


def _say(text: str) -> None:
    """Prints text on stdout as written: user text (names, tags) is never read as markup."""
    _consoles.out.print(text, markup=False, highlight=False)


def _complain(text: str) -> None:
    """Prints `himl: <text>` on stderr, on one line however long, as written."""
    _consoles.err.print(f"himl: {text}", markup=False, highlight=False, soft_wrap=True)


Patterns = Annotated[
    list[str],
    typer.Argument(metavar="PATTERN...", help="Runs: ids, names, tags, folders, or 'all'."),
]
Run = Annotated[
    str, typer.Argument(metavar="RUN", help="A run id, recovery id, name or job folder (one run).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="A local workspace folder, an AzureML config.json, or a saved workspace block's "
        "name (local-workspace/NAME, azureml-workspace/NAME; read from the Prefect API at "
        "PREFECT_API_URL). Default: the library's order, ending at $HIML_HOME or ./.himl.",
    ),
]


@app.callback()
def main(
    ctx: typer.Context,
    workspace: WorkspaceOption = None,
    sdk: Annotated[
        AzureMLSdkChoice,
        typer.Option(
            "--sdk",
            help="The AzureML SDK for an AzureML workspace: v2 (azure-ai-ml) or v1 (azureml-core).",
        ),
    ] = AzureMLSdkChoice.V2,
) -> None:
    """Chooses the workspace (opened by the first command that needs it)."""
    if not isinstance(ctx.obj, Backend):
        ctx.obj = WorkspaceChoice(workspace, sdk.value)


def _backend(ctx: typer.Context, workspace: str | None) -> Backend:
    """The workspace of `himl --workspace W COMMAND` or `himl COMMAND --workspace W` (opened once).

    Raises:
        InvalidInputError: Two different workspaces are given, one before the command and one
            after it.
    """
    if isinstance(ctx.obj, Backend):
        return ctx.obj
    choice = ctx.obj if isinstance(ctx.obj, WorkspaceChoice) else WorkspaceChoice(None, "v2")
    before = choice.workspace
    if before is not None and workspace is not None and before != workspace:
        raise InvalidInputError(
            f"--workspace given twice, '{before}' before the command and '{workspace}' after "
            "it: give one"
        )
    backend = backend_for_command(workspace if workspace is not None else before, sdk=choice.sdk)
    ctx.obj = backend
    return backend


@contextlib.contextmanager
def _reporting() -> Iterator[None]:
    """Turns the library's errors into one line on stderr and an exit code, no traceback."""
    try:
        yield
    except HimlError as error:
        _complain(str(error))
        raise typer.Exit(exit_code_of(error)) from None
    except KeyboardInterrupt:
        _complain("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _print_table(table: Table, rows: int) -> None:
    out = _consoles.out
    if out.is_terminal and rows + 4 > out.size.height:
        with out.pager(styles=True):
            out.print(table)
    else:
        out.print(table)


@app.command()
def status(
    ctx: typer.Context,
    patterns: Patterns,
    as_json: AsJson = False,
    workspace: WorkspaceOption = None,
) -> None:
    """One row per run: experiment, run id, display name, status, failure, attempt, times, link.

    A pipeline run is followed by its steps (step name, run, status, the run a reused step
    took its outputs from), in the pipeline's order; with --json, under its "steps".
    """
    with _reporting():
        backend = _backend(ctx, workspace)
        listed = backend.list_runs()
        runs = select_runs(backend, patterns, listed=listed)
        pipelines = pipelines_among(backend, runs, listed)
        by_id = {run.ref.run_id: run for run in listed}
        rows = []
        for run in runs:
            if run.parent_run_id in pipelines:
                continue  # a step: shown under its pipeline run
            row = status_row(run)
            if run.ref.run_id in pipelines:
                row["steps"] = [
                    step_row(backend, step, by_id) for step in pipelines[run.ref.run_id]
                ]
            rows.append(row)
    if as_json:
        _print_json(rows)
        return
    table = Table(*(column.replace("_", " ") for column in COLUMNS))
    for row in rows:
        table.add_row(*(escape(str(row[column])) for column in COLUMNS))
        for step in row.get("steps", ()):
            table.add_row(*(escape(str(cell)) for cell in _step_cells(step)))
    _print_table(table, len(rows) + sum(len(row.get("steps", ())) for row in rows))


def _step_cells(step: dict[str, Any]) -> list[str]:
    """A step's row in the status table: its name where the experiment goes."""
    # The run id alone (the experiment is the pipeline's): the column stays narrow.
    reused = f"reused from {step['reused_from'].split(':')[-1]}" if step["reused_from"] else ""
    return [
        f"  step {step['step']}",
        step["run_id"] or "-",
        reused or step.get("display_name", ""),
        step["status"],
        step["failure_kind"],
        str(step.get("attempt", "")),
        step.get("started", ""),
        step.get("duration", ""),
        step.get("portal_url", ""),
    ]


def _confirm_several(lines: list[str], question: str, declined: str) -> None:
    """With more than one line: lists them and asks; a no ends the command with exit code 1."""
    if len(lines) <= 1:
        return
    for line in lines:
        _say(f"  {line}")
    if not typer.confirm(question.format(len(lines)), default=False):
        _complain(declined)
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def cancel(
    ctx: typer.Context,
    patterns: Patterns,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Cancel several without asking.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Cancels the runs (and their unfinished children); asks first when there are several."""
    with _reporting():
        backend = _backend(ctx, workspace)
        runs = [run for run in select_runs(backend, patterns) if not run.state.is_terminal]
        if not runs:
            _say("nothing to cancel: every run named has ended")
            return
        if not yes:
            lines = [f"{run.ref.recovery_id}  {run.state.status.value}" for run in runs]
            _confirm_several(lines, "Cancel these {} runs?", "nothing canceled")
        for run in runs:
            backend.cancel(run.ref)
            _say(f"canceled {run.ref.recovery_id}")


@app.command()
def resubmit(
    ctx: typer.Context,
    patterns: Patterns,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Resubmit several without asking.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Submits each run's job again, resuming from its checkpoints; prints the new recovery ids.

    Only ended runs: a run still going is refused (cancel it first). The job is the spec the
    run was submitted with, its snapshot taken again from the same folder. A pipeline run's
    pipeline is submitted again as one new pipeline run: each step that did not complete
    resumes from its run, and the backend reuses the steps that completed.
    """
    with _reporting():
        backend = _backend(ctx, workspace)
        runs = select_runs(backend, patterns)
        going = [run.ref.recovery_id for run in runs if not run.state.is_terminal]
        if going:
            raise InvalidInputError(
                f"not resubmitting runs still going: {', '.join(going)} (cancel them first)"
            )
        pipelines = {run.ref.run_id for run in runs if _is_pipeline(backend, run.ref)}
        # A step named with its pipeline run is resubmitted with the pipeline, not alone.
        runs = [run for run in runs if run.parent_run_id not in pipelines]
        # Everything read (a damaged spec named) before anything is submitted.
        jobs = [
            (run.ref, pipeline_to_resubmit(backend, run.ref))
            if run.ref.run_id in pipelines
            else (run.ref, backend.submitted_spec(run.ref).resuming_from(run.ref.recovery_id))
            for run in runs
        ]
        if not yes:
            lines = [ref.recovery_id for ref, _ in jobs]
            _confirm_several(lines, "Resubmit these {} jobs?", "nothing resubmitted")
        for ref, job in jobs:
            new = (
                backend.submit_pipeline(job)
                if isinstance(job, PipelineSpec)
                else backend.submit(job)
            )
            _say(f"resubmitted {ref} as {new.recovery_id}")


def _is_pipeline(backend: Backend, ref: RunRef) -> bool:
    return pipeline_steps_or_none(backend, ref) is not None


@app.command()
def logs(
    ctx: typer.Context,
    run: Run,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow until the run ends.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="How long -f follows before giving up, in seconds.")
    ] = DEFAULT_FOLLOW_SECONDS,
    workspace: WorkspaceOption = None,
) -> None:
    """Prints the run's driver log; with -f, follows it until the run ends."""
    with _reporting():
        backend = _backend(ctx, workspace)
        ref = select_run(backend, run)
        for line in backend.iter_logs(ref, follow=follow, timeout=timeout):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        if follow:
            state = backend.get_state(ref)
            _consoles.err.print(
                f"run {ref} ended {state.status.value}", highlight=False, markup=False
            )


@app.command()
def results(
    ctx: typer.Context,
    run: Run,
    prefix: Annotated[str, typer.Option(help="Which files: a name prefix.")] = "outputs/",
    dest: Annotated[
        Path | None, typer.Option(help="Where to put them (default: ./<run id>).")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Downloads the run's files, checksums checked, with a progress bar."""
    with _reporting():
        backend = _backend(ctx, workspace)
        ref = select_run(backend, run)
        destination = dest if dest is not None else Path(ref.run_id)
        report = backend.download_files(
            ref,
            prefix,
            destination,
            validate_checksum=True,
            show_progress=_consoles.err.is_terminal,
        )
    _say(
        f"{report.files} file(s), {report.bytes} bytes from {ref} into {destination} "
        f"(checksums checked; {report.skipped_identical} already there)"
    )


@app.command()
def metrics(
    ctx: typer.Context,
    patterns: Patterns,
    best: Annotated[
        str | None, typer.Option(help="Mark the run with the best last value of this metric.")
    ] = None,
    maximize: Annotated[bool, typer.Option(help="With --best: higher is better.")] = False,
    as_json: AsJson = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Final values and each metric's history as a curve; several runs side by side.

    A sweep's run is followed by its trials, one row each.
    """
    with _reporting():
        backend = _backend(ctx, workspace)
        runs = select_runs(backend, patterns, children=True)
        curves = {run.ref.recovery_id: metric_curves(backend.get_metrics(run.ref)) for run in runs}
        shown = {run.ref.recovery_id: run.display_name for run in runs}
        names = sorted({name for by in curves.values() for name in by})
        if best is not None and best not in names:
            raise InvalidInputError(
                f"--best {best!r}: none of the runs logged that metric; they logged: "
                f"{', '.join(names) or 'no metrics'}"
            )
    if as_json:
        _print_json(
            {
                run: {name: [list(point) for point in curve.points] for name, curve in by.items()}
                for run, by in curves.items()
            }
        )
        return
    best_run = _best(curves, best, maximize) if best else None
    if not names:
        _say("no metrics logged")
        return
    # Names, tags and values are the user's text: escaped, never read as rich markup.
    table = Table("run", "display name", *(escape(name) for name in names))
    for run, by in curves.items():
        cells = [
            f"{by[name].sparkline()} {format_number(by[name].last)}" if name in by else "-"
            for name in names
        ]
        table.add_row(
            escape(f"{run} *" if run == best_run else run), escape(shown[run]), *map(escape, cells)
        )
    _print_table(table, len(curves))
    if best_run:
        _say(f"* best {best}: {best_run}")


def _best(curves: dict[str, Any], metric: str, maximize: bool) -> str | None:
    scored = [
        (by[metric].last, run)
        for run, by in curves.items()
        if metric in by and by[metric].last is not None and by[metric].last == by[metric].last
    ]
    if not scored:
        return None
    return (max(scored) if maximize else min(scored))[1]


@app.command()
def datasets(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="A dataset's name (none: every dataset's latest).")
    ] = None,
    as_json: AsJson = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Datasets: every version of one, or the latest of each; where each lives, what made it."""
    with _reporting():
        backend = _backend(ctx, workspace)
        if name is None:
            versions = [backend.resolve_dataset(DatasetConfig(n)) for n in backend.dataset_names()]
        else:
            latest = backend.resolve_dataset(DatasetConfig(name))
            versions = [
                backend.resolve_dataset(DatasetConfig(name, version=version))
                for version in range(1, latest.version + 1)
            ]
    rows = [
        {
            "name": v.name,
            "version": v.version,
            "datastore": v.datastore,
            "path": v.path,
            "created_by_run": v.created_by_run,
        }
        for v in versions
    ]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _say("no datasets registered")
        return
    table = Table("name", "version", "datastore", "path", "created by run")
    for row in rows:
        table.add_row(*("-" if value is None else escape(str(value)) for value in row.values()))
    _print_table(table, len(rows))


@app.command()
def datastores(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Datastore names (none: all).")] = None,
    as_json: AsJson = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Datastores: name, and where each lives (secrets never shown)."""
    with _reporting():
        backend = _backend(ctx, workspace)
        stores = [backend.datastore(name) for name in (names or backend.datastore_names())]
    rows = [{"name": store.name, "where": repr(store)} for store in stores]
    if as_json:
        _print_json(rows)
        return
    table = Table("name", "where")
    for row in rows:
        table.add_row(escape(row["name"]), escape(row["where"]))
    _print_table(table, len(rows))


def run() -> None:
    """The console script's entry point."""
    app()


__all__ = ["app", "run"]
