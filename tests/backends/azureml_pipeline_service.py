"""The stand-in's AzureML v1 pipeline service: pipeline runs, published pipelines, schedules.

What the service does with a submitted `Pipeline` of `PythonScriptStep`s, and where each
behaviour comes from:
- a pipeline run is a run whose step runs are its children (`PipelineRun.get_steps()` is
  `get_children()`, azureml/pipeline/core/run.py); a step run is named after its step and
  tagged `azureml.nodeid` and `azureml.pipeline` (the pipeline run's id), as
  `StepRun._from_dto` reads them (same file);
- the graph: a step waits for the steps whose outputs it reads (`OutputFileDatasetConfig.
  as_input`) and those it `run_after`s (azureml/pipeline/core/builder.py, `run_after`: "Run
  this step after the specified step", "If you want to run a step, say, step3 after both
  step1 and step2 are completed"); a step starts once they completed, one poll of the
  pipeline run at a time;
  with `continue_on_step_failure=False` (Pipeline.submit's default, pipeline.py: "If True,
  only steps that have no dependency on the output of the failed step will continue") a
  failed step stops the steps that wait for it, and the pipeline run ends Failed once
  nothing runs;
- canceling the pipeline run cancels its running steps and starts no more
  (`PipelineRun.cancel`, azureml/pipeline/core/run.py: "Cancel the ongoing run");
- reuse: a step with `allow_reuse` whose script, arguments, source folder content (the
  snapshot taken at submission), inputs (their dataset versions) and outputs equal those of
  an earlier completed step run does not run: its step run is Completed at once with the
  properties `azureml.reusedrunid`, `azureml.reusednodeid` and `azureml.reusedpipeline`
  (StepRun._from_dto), and takes the earlier run's outputs (PythonScriptStep's `allow_reuse`,
  azureml/pipeline/steps/python_script_step.py: "If the step contents (scripts/dependencies)
  as well as inputs and parameters remain unchanged, the output from the previous run of
  this step is reused. When reusing the step, instead of submitting the job to compute, the
  results from the previous run are immediately made available to any subsequent steps");
- outputs are registered on completion (`register_on_complete`) as for single runs; an input
  handed on is the version the upstream step registered;
- publishing makes a `PublishedPipeline` (its own snapshots, taken then) with an id and a REST
  endpoint; a `PipelineEndpoint` keeps versions and a default (pipeline_endpoint.py:
  `publish`, `add_default`, `list_pipelines`); a `Schedule` on an endpoint has a name, a
  description, a recurrence and a status, "Active" or "Disabled" (schedule.py:
  `create_for_pipeline_endpoint`, `update`, `list`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.backends.job_process import copy_files

if TYPE_CHECKING:
    from tests.backends.azureml_service import FakeAzureMLService, FakeRun

_ENDED = ("Completed", "Failed", "Canceled")


@dataclass
class Node:
    """One step of a submitted pipeline, as the service received it."""

    step: Any  # the PythonScriptStep
    snapshot: list[str]
    content: str  # a digest of the snapshot's files at submission
    upstream: list[str]
    id: str = field(default_factory=lambda: secrets.token_hex(4))
    run: FakeRun | None = None
    # Where the snapshot's files are kept for a step that executes later (executing service).
    snapshot_root: Path | None = None

    @property
    def name(self) -> str:
        return str(self.step.name)


def nodes_of(service: FakeAzureMLService, steps: Sequence[Any]) -> list[Node]:
    """The graph of the steps, with each step's snapshot taken now (its `.amlignore` applies)."""
    writers = {id(output): step.name for step in steps for output in step._outputs}
    nodes = []
    for step in steps:
        root = Path(step._source_directory)
        snapshot = service._snapshot(root)
        digest = hashlib.sha256()
        for name in snapshot:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
        upstream = [writers[id(c.dataset)] for c in step._inputs if id(c.dataset) in writers]
        upstream += [other.name for other in step.run_after_steps]
        node = Node(step, snapshot, digest.hexdigest(), list(dict.fromkeys(upstream)))
        if service.execute:  # the snapshot is taken now; the step may start much later
            node.snapshot_root = service.compute_root / f"snapshot-{node.id}"
            copy_files(root, snapshot, node.snapshot_root)
        nodes.append(node)
    return nodes


@dataclass
class StepConfig:
    """What the compute runs for a step, shaped as the `ScriptRunConfig` an executed job reads
    (tests/backends/azureml_execution.py): its script, arguments, and run configuration with
    the step's datasets, each input the registered version it reads."""

    script: str
    arguments: list[str]
    run_config: Any
    source_directory: str


def step_config(node: Node, inputs: Sequence[tuple[Any, Any]]) -> StepConfig:
    step = node.step
    run_config = copy.deepcopy(step._runconfig)
    run_config.data = {}
    for consumption, registered in inputs:
        named = registered.as_named_input(consumption.name)
        consume = named.as_mount if consumption.mode == "mount" else named.as_download
        run_config.data[consumption.name] = consume(path_on_compute=consumption.path_on_compute)
    run_config.output_data = {output.name: output for output in step._outputs}
    return StepConfig(
        step._script_name,
        [str(a) for a in step._arguments],
        run_config,
        str(node.snapshot_root),
    )


@functools.cache
def pipeline_run_class() -> type:
    """FakePipelineRun, made on first use (its base class lives in azureml_service)."""
    from tests.backends.azureml_service import Execution, FakeRun, Outcome

    class FakePipelineRun(FakeRun):
        """A pipeline run: its status follows its step runs, advanced one poll at a time."""

        def __init__(
            self,
            service: FakeAzureMLService,
            experiment: str,
            nodes: list[Node],
            description: str,
        ) -> None:
            super().__init__(service, experiment, Outcome(statuses=("NotStarted",)))
            self.nodes = nodes
            self.description = description
            self.current = "NotStarted"
            self.polls = 0

        @property
        def status(self) -> str:
            return "Canceled" if self.canceled else self.current

        def get_details(self) -> dict[str, Any]:
            if self.status not in _ENDED:
                self.polls += 1
                if self.polls > 1:
                    self._advance()
            details: dict[str, Any] = {
                "runId": self.id,
                "status": self.status,
                "createdTimeUtc": "2026-11-21T09:00:00.000000Z",
            }
            if self.polls > 1:
                details["startTimeUtc"] = "2026-11-21T09:05:00.1234567Z"
            if self.status in _ENDED:
                details["endTimeUtc"] = "2026-11-21T10:00:00.000000Z"
            return details

        def _advance(self) -> None:
            for node in self.nodes:
                if node.run is not None and node.run.get_status() not in _ENDED:
                    node.run.get_details()
            by_name = {node.name: node for node in self.nodes}
            stopped = any(
                node.run is not None and node.run.get_status() in ("Failed", "Canceled")
                for node in self.nodes
            )
            if not stopped:
                for node in self.nodes:
                    waits = [by_name[name].run for name in node.upstream]
                    if node.run is None and all(
                        run is not None and run.get_status() == "Completed" for run in waits
                    ):
                        self._start(node)
            running = any(
                node.run is not None and node.run.get_status() not in _ENDED for node in self.nodes
            )
            if running or (not stopped and any(node.run is None for node in self.nodes)):
                self.current = "Running"
            else:
                self.current = "Failed" if stopped else "Completed"

        def _start(self, node: Node) -> None:
            service = self.service
            inputs = [(c, self._input_version(c)) for c in node.step._inputs]
            key = reuse_key(node, inputs)
            earlier = service.pipelines.completed.get(key) if node.step._allow_reuse else None
            if earlier is not None and earlier.get_status() == "Completed":
                run = FakeRun(service, self.experiment.name, Outcome(statuses=("Completed",)))
                run.properties = {
                    "azureml.reusedrunid": earlier.id,
                    "azureml.reusednodeid": earlier.tags.get("azureml.nodeid", ""),
                    "azureml.reusedpipeline": earlier.tags.get("azureml.pipeline", ""),
                }
                # What it hands on: the versions the reused run registered.
                run.registered_outputs = dict(earlier.registered_outputs)
            else:
                script = node.step._script_name
                execution = None
                if node.snapshot_root is not None:  # the executing service runs the step
                    config = step_config(node, inputs)
                    execution = Execution(config, node.snapshot_root, node.snapshot)
                run = FakeRun(
                    service,
                    self.experiment.name,
                    service.outcomes.get(script, service.next_outcome),
                    execution=execution,
                )
                run.output_data = {output.name: output for output in node.step._outputs}
                run.input_datasets = [
                    input_entry(consumption, registered) for consumption, registered in inputs
                ]
                known = service.pipelines.completed.get(key)
                if node.step._allow_reuse and (known is None or known.get_status() != "Completed"):
                    service.pipelines.completed[key] = run  # reusable once it completed
            run.name = run.display_name = node.name  # a step run is named after its step
            run.tags = {"azureml.nodeid": node.id, "azureml.pipeline": self.id}
            node.run = run
            self.children.append(run)
            service.runs[run.id] = run
            if run.execution is not None:
                service._start_job(run, run.execution, ())

        def _input_version(self, consumption: Any) -> Any:
            """The registered dataset version an input reads: handed on, or registered."""
            for node in self.nodes:
                for output in node.step._outputs:
                    if output is consumption.dataset:
                        assert node.run is not None
                        return node.run.registered_outputs[output.name]
            return self.service.registered_for(consumption.dataset)

        def cancel(self) -> None:
            if self.status in _ENDED:
                return
            self.canceled = True
            for node in self.nodes:
                if node.run is not None:
                    node.run.cancel()

    return FakePipelineRun


def reuse_key(node: Node, inputs: Sequence[tuple[Any, Any]]) -> str:
    """What decides reuse: the script, arguments, snapshot content, inputs and outputs."""
    step = node.step
    parts = [
        step._script_name,
        repr([str(a) for a in step._arguments]),
        node.content,
        repr([(c.name, c.mode, r.name, r.version) for c, r in inputs]),
        repr([(o.name, o._registration.name) for o in step._outputs]),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def input_entry(consumption: Any, registered: Any) -> dict[str, Any]:
    """An input as `Run.get_details()` lists it in `inputDatasets` (after the SDK resolved its
    dataset by id: azureml/data/_dataset_lineage.py, `_resolve_input_dataset`)."""
    return {
        "dataset": registered,
        "consumptionDetails": {
            "type": "RunInput",
            "inputName": consumption.name,
            "mechanism": "Mount" if consumption.mode == "mount" else "Download",
        },
    }


@dataclass
class FakePublishedPipeline:
    """A published pipeline (azureml/pipeline/core/graph.py, `PublishedPipeline`)."""

    id: str
    name: str
    description: str
    version: str
    nodes: list[Node]
    endpoint: str


@dataclass
class FakePipelineEndpoint:
    """A pipeline endpoint: versions of published pipelines, one the default."""

    id: str
    name: str
    description: str
    endpoint: str
    pipelines: list[FakePublishedPipeline] = field(default_factory=list)
    default_version: str = "0"

    def list_pipelines(self, active_only: bool = True) -> list[FakePublishedPipeline]:
        return list(self.pipelines)

    def add_default(self, pipeline: FakePublishedPipeline) -> None:
        self.pipelines.append(pipeline)
        self.default_version = str(len(self.pipelines) - 1)


@dataclass
class FakeSchedule:
    """A schedule (azureml/pipeline/core/schedule.py, `Schedule`)."""

    id: str
    name: str
    description: str
    pipeline_endpoint_id: str
    experiment: str
    recurrence: Any
    status: str = "Active"


class PipelineStandIn:
    """The pipeline half of the stand-in service (`FakeAzureMLService.pipelines`)."""

    def __init__(self, service: FakeAzureMLService) -> None:
        self.service = service
        # Completed step runs by what decides reuse (see reuse_key), for later submissions.
        self.completed: dict[str, Any] = {}
        self.published: list[FakePublishedPipeline] = []
        self.endpoints: list[FakePipelineEndpoint] = []
        self.schedules: list[FakeSchedule] = []
        self.fail_next_submit: BaseException | None = None
        self.crash_after_create: BaseException | None = None

    def submit(
        self, experiment: str, nodes: list[Node], description: str, tags: dict[str, str]
    ) -> Any:
        run = pipeline_run_class()(self.service, experiment, nodes, description)
        self.service.submit_requests += 1
        self.service.runs[run.id] = run
        if self.crash_after_create is not None:  # the submitter dies before it hears back
            error, self.crash_after_create = self.crash_after_create, None
            raise error
        run.tags = dict(tags)  # Experiment.submit sets them in a later request
        return run

    def url(self, kind: str, id: str) -> str:
        ws = self.service.workspace
        return (
            f"https://eastus.api.azureml.ms/pipelines/v1.0/subscriptions/{ws.subscription_id}/"
            f"resourceGroups/{ws.resource_group}/providers/Microsoft.MachineLearningServices/"
            f"workspaces/{ws.name}/{kind}/{id}"
        )
