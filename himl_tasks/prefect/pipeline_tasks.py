"""The Prefect task that runs a native pipeline: submit, watch each step, resubmit, report.

Thin: the backend-neutral logic lives in `himl_tasks.jobs.pipeline_submission` and
`himl_tasks.jobs.pipeline_to_completion`. As with jobs, nothing is cached by its inputs: the
pipeline is submitted under its identity (every step's job identity), which the backend
records with the pipeline run, so a flow re-run after a crash finds the pipeline run it made.

While the pipeline runs, each step's log lines are forwarded to the task's log, prefixed
with the step's name; each step run gets a link artifact and its training curves as they
grow. At the end each step gets a table of its final metrics, and the pipeline one lineage
artifact: which dataset version each step read and wrote. Canceling the flow run cancels the
pipeline run, and the backend cancels its running steps.

Example:
    ```python
    from prefect import flow

    from himl_tasks import JobSpec, PipelineSpec, PipelineStep
    from himl_tasks.prefect import run_pipeline


    @flow
    def prepare_and_train(workspace_block: str = "local-workspace/demo") -> float:
        pipeline = PipelineSpec(
            "prepare-and-train",
            [
                PipelineStep("prepare", JobSpec(entry_script="prep.py",
                                                input_datasets=["raw"],
                                                output_datasets=["features"])),
                PipelineStep("train", JobSpec(entry_script="train.py",
                                              input_datasets=["features"])),
            ],
            existing_datasets=["raw"],
        )
        result = run_pipeline(workspace_block, pipeline, max_retries=2)
        return float(result.steps["train"].metrics["test_accuracy"])
    ```
"""

from __future__ import annotations

import functools
import logging
from typing import TypeAlias

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from himl_tasks.backends.base import Backend
from himl_tasks.backends.watching import DEFAULT_TIMEOUT_SECONDS, LogTail, PollSchedule
from himl_tasks.errors import HimlError
from himl_tasks.jobs.identity import pipeline_submission_identity
from himl_tasks.jobs.pipeline_submission import plan_pipeline, submit_pipeline_once
from himl_tasks.jobs.pipeline_to_completion import PipelineResult, run_pipeline_to_completion
from himl_tasks.jobs.run_to_completion import ResubmitPolicy
from himl_tasks.pipelines import PipelineSpec
from himl_tasks.prefect.artifacts import artifact_key, create_metrics_table, create_run_link
from himl_tasks.prefect.job_tasks import report_submission, watch_in_task
from himl_tasks.prefect.metric_artifacts import MetricHistoryArtifacts
from himl_tasks.prefect.workspaces import WorkspaceBlockOrName, backend_for, workspace_label
from himl_tasks.runs import RunRef, RunState

RunLogger: TypeAlias = "logging.Logger | logging.LoggerAdapter[logging.Logger]"


@task(cache_policy=NO_CACHE)
def run_pipeline(
    workspace_block: WorkspaceBlockOrName,
    pipeline: PipelineSpec,
    max_retries: int = 2,
    retry_delay_seconds: float = 10.0,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> PipelineResult:
    """Runs a pipeline to its end; resubmits it, lost steps resuming, when a step was lost.

    A step preempted (or lost to the infrastructure) makes the pipeline run fail; the
    pipeline is submitted again with that step resuming from its lost run's latest recovery
    checkpoint, up to `max_retries` times, and the steps that completed are reused where the
    backend can. A step's user error, or a canceled pipeline, is never retried.

    Artifacts: a link to the pipeline run and to each step run, each step run's training
    curves, a table of each step's final metrics, and the lineage (what each step read and
    wrote).

    Raises:
        JobFailedError: For a step's user error or cancellation (the step's state), or a lost
            step past `max_retries`.
        HimlError: Before anything is submitted, for a step this backend cannot run.
    """
    policy = ResubmitPolicy(max_retries=max_retries, delay_seconds=retry_delay_seconds)
    PollSchedule(timeout_seconds=timeout_seconds)  # checks it before anything is submitted
    backend = backend_for(workspace_block)
    # Planned once: the identity and every submission read the versions pinned here.
    planned = plan_pipeline(backend, pipeline)
    identity = pipeline_submission_identity(
        planned.pipeline, planned.plans, workspace=workspace_label(workspace_block)
    )
    found: list[bool] = []  # per submission: an earlier run found rather than submitted
    result = run_pipeline_to_completion(
        backend,
        planned.pipeline,
        submit=lambda job: _submit(workspace_block, backend, job, identity, found),
        watch=lambda ref: _watch(backend, ref, timeout_seconds),
        policy=policy,
    )
    # Told by the submission itself, not by the run's created time against this machine's
    # clock (the service's clock is not this one's).
    result.reused = found == [True]
    for step in result.steps.values():
        if step.source is not None:
            create_metrics_table(step.source, step.metrics)
    create_markdown_artifact(
        markdown=lineage_markdown(planned.pipeline, result),
        key=artifact_key("lineage", result.run.run_id),
        description=f"What each step of pipeline run {result.run} read and wrote",
    )
    return result


def lineage_markdown(pipeline: PipelineSpec, result: PipelineResult) -> str:
    """The lineage of a completed pipeline run: each step's run, what it read and wrote."""

    def versions(datasets: dict[str, int]) -> str:
        return ", ".join(f"{name}:{version}" for name, version in datasets.items()) or "-"

    def link(ref: RunRef | None) -> str:
        if ref is None:
            return "-"
        return f"[{ref.recovery_id}]({ref.portal_url})" if ref.portal_url else ref.recovery_id

    lines = [
        f"# Pipeline {pipeline.name}: run {link(result.run)}",
        "",
        "| step | run | reused from | reads | writes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in result.steps.values():
        lines.append(
            f"| {step.step} | {link(step.run)} | {link(step.reused_from)} | "
            f"{versions(step.inputs)} | {versions(step.outputs)} |"
        )
    if len(result.attempts) > 1:
        lines += ["", f"Pipeline runs, first to last: {', '.join(result.attempts)}"]
    return "\n".join(lines) + "\n"


def _submit(
    workspace_block: WorkspaceBlockOrName,
    backend: Backend,
    pipeline: PipelineSpec,
    identity: str,
    found: list[bool],
) -> RunRef:
    """Submits the pipeline unless its identity has a live or completed run; records a new one.

    Appends to `found` whether the run was found rather than submitted now.
    """
    ref, was_found = submit_pipeline_once(backend, pipeline, identity)
    found.append(was_found)
    return report_submission(
        workspace_block, backend, ref, was_found, what="pipeline", link="pipeline"
    )


def _watch(backend: Backend, ref: RunRef, timeout_seconds: float) -> RunState:
    """Waits for a pipeline run to end, its steps' logs in the task's log.

    The pipeline run is canceled with its flow run (the backend cancels its running steps).
    """
    steps = StepWatch(backend, ref, get_run_logger())
    return watch_in_task(
        backend,
        ref,
        timeout_seconds,
        log_prefix="pipeline",
        look=steps.tick,
        finish=steps.finish,
        what="pipeline run",
    )


class StepWatch:
    """Follows a pipeline run's steps as they start: their logs, links and training curves.

    A view: a backend error while looking is logged, and the watch (and canceling) goes on.
    """

    def __init__(self, backend: Backend, ref: RunRef, logger: RunLogger) -> None:
        self.backend = backend
        self.ref = ref
        self.logger = logger
        self._followed: dict[str, tuple[str, LogTail, MetricHistoryArtifacts]] = {}
        self._reported: set[str] = set()
        self._every_step_reported = False

    def tick(self, *, final: bool = False) -> None:
        """Notes steps that started or were reused; forwards the new lines of each step's log.

        The pipeline's steps are read until every step has a run: after that only the logs
        and metrics of the steps that run are read (a read of the steps costs the pipeline's
        plan and its child runs).
        """
        try:
            steps = []
            if not self._every_step_reported:
                steps = self.backend.pipeline_steps(self.ref)
                self._every_step_reported = all(s.run is not None for s in steps)
            for step in steps:
                if step.run is None or step.step in self._reported:
                    continue
                self._reported.add(step.step)
                if step.reused_from is not None:
                    self.logger.info(
                        "step %s reused run %s (same code, settings and inputs)",
                        step.step,
                        step.reused_from,
                    )
                    continue
                self.logger.info("step %s started: run %s", step.step, step.run)
                create_run_link(step.run, "step")
                run = step.run
                tail = LogTail(functools.partial(self.backend.read_log, run))
                self._followed[run.run_id] = (
                    step.step,
                    tail,
                    MetricHistoryArtifacts(self.backend, run),
                )
            for name, tail, curves in self._followed.values():
                for line in tail.new_lines(final=final):
                    self.logger.info("[%s] %s", name, line)
                if final:
                    curves.publish()
                else:
                    curves.tick()
        except HimlError as error:
            self.logger.warning("could not look at the steps of %s: %s", self.ref, error)

    def finish(self) -> None:
        """After the pipeline run ended: the last lines of every step's log, the final curves."""
        self.tick(final=True)
