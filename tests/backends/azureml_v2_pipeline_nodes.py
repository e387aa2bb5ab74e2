"""What the AzureML service (SDK v2) does with a pipeline job's nodes, for the v2 stand-in.

A pipeline job (`azure.ai.ml.entities.PipelineJob`, type "pipeline") holds command nodes
whose inputs may be bound to other nodes' outputs; the service receives a binding as
`${{parent.jobs.<node>.outputs.<output>}}` (what `NodeOutput` renders into the REST payload,
azure/ai/ml/entities/_job/pipeline/_io/base.py). A job submitted from a registered pipeline
component (`PipelineJob(component="azureml:<name>:<version>")`) runs that component's nodes.
What the stand-in does with them, and where each behaviour comes from:

- the job is validated as the SDK validates it before sending (`PipelineJob._validate`, e.g.
  "Compute not set" for a node without compute in a pipeline without a default compute)
  and turned into its REST payload (`_to_rest_object`), in the base stand-in's `create_job`;

- the pipeline job goes NotStarted, Running, then Completed, Failed or Canceled (the REST
  `JobStatus`); each read of its run details polls its running child jobs once and starts
  every node whose bound inputs' writers have completed (the graph is its bindings: a
  command node has no other edge in the payload the SDK sends, the `jobs` of
  `PipelineJob._to_rest_object`);
- a node runs as a child job (`jobs.list(parent_job_name=...)`), a command job made of the
  node, named by the service (a GUID here, as AzureML's child jobs are), with the node's
  tags; a bound input reads the data asset version its writer's output was registered as
  (an `Output`'s `name` is "the name to be used to register the output as a Data or Model
  asset", learn.microsoft.com azure.ai.ml.Output; which version a bound input reads is
  taken to be that one: not checked live), in the node input's mode. A bound input carries
  no `path_on_compute` (a `NodeInput` has none);
- reuse: a node whose component is deterministic (`is_deterministic`, default True), in a
  pipeline without `settings.force_rerun`, is not run again when an earlier job of it "has
  been run before in the current workspace with the same input and settings": the service
  "will reuse results from a previously submitted job ... no compute resources will be used"
  (`command()`'s docstring, azure/ai/ml/entities/_builders/command_func.py; as v1's pipelines
  reuse a step whose script, inputs and parameters are unchanged, "the job is not submitted
  to the compute", Azure/MachineLearningNotebooks issue 298). The stand-in keys that on a
  hash of what the service receives: the command, the code's content as uploaded at
  submission, the environment, the variables, the compute, the inputs (bound ones as the
  versions they resolve to) and the outputs. A reused node's child job is Completed at
  once, registers nothing, and carries the properties `azureml.isreused` = "true" and
  `azureml.reusedrunid` (the earlier job: azure/ai/ml/constants/_job/pipeline.py, read by
  `jobs.download`, azure/ai/ml/operations/_job_operations.py);
- `continue_on_step_failure` False (`PipelineConstants.CONTINUE_ON_STEP_FAILURE`,
  azure/ai/ml/constants/_job/pipeline.py; in v1's words, with True only steps that do not
  depend on the failed step's output go on): once a child job fails or is canceled no
  further node starts; running ones go on to their end; then the pipeline fails with a
  UserError saying it has failed child jobs (the wording is the stand-in's; not checked
  live);
- canceling the pipeline job (`jobs.begin_cancel`) cancels its running child jobs and
  starts no more (taken from the studio's behaviour; not checked live).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from himl_tasks.backends.azureml_v2 import sdk
from tests.backends.azureml_v2_service import (
    ENDED,
    FakeAzureMLV2Service,
    FakeJob,
    Outcome,
    utc_now,
)

_BOUND = re.compile(r"\$\{\{\s*parent\.jobs\.(?P<node>\w+)\.outputs\.(?P<output>\w+)\s*\}\}")
PIPELINE_FAILED: dict[str, Any] = {
    "error": {
        "code": "UserError",
        "message": "Pipeline has failed child jobs. See the child jobs for details.",
        "details": [],
    }
}


def is_pipeline_job(job: Any) -> bool:
    """True for a pipeline job as the service receives it (type "pipeline")."""
    return str(getattr(job, "type", "")) == "pipeline"


def bindings(node: Any) -> dict[str, tuple[str, str]]:
    """The node's inputs bound to other nodes' outputs: {input: (node, output)}."""
    found = {}
    for name, given in (getattr(node, "inputs", None) or {}).items():
        match = _BOUND.fullmatch(str(getattr(given, "_data", given)))
        if match:
            found[str(name)] = (match["node"], match["output"])
    return found


class FakePipelineJob(FakeJob):
    """A pipeline job on the stand-in: it runs no script; it starts its nodes as child jobs.

    See the module docstring. `node_code` names where each node's code is, when not where
    it was submitted from (a copy taken at submission).
    """

    def __init__(self, service: FakeAzureMLV2Service, entity: Any, nodes: dict[str, Any]) -> None:
        super().__init__(service, entity, Outcome(log_lines=()))
        self.nodes = nodes
        self.current = "NotStarted"
        self.error: dict[str, Any] | None = None
        self.started: dict[str, FakeJob] = {}
        self.node_snapshots = {name: service.snapshot_of(node) for name, node in nodes.items()}
        # The code's content as uploaded at submission, for the reuse key.
        self.code_digests = {
            name: _content_digest(Path(str(node.code)), self.node_snapshots[name])
            for name, node in nodes.items()
        }
        self.node_code: dict[str, Path] = {}
        self.force_rerun = bool(getattr(getattr(entity, "settings", None), "force_rerun", False))

    @property
    def status(self) -> str:
        return "Canceled" if self.canceled else self.current

    def poll(self) -> None:
        if self.status in ENDED:
            return
        if self.current == "NotStarted":
            self.current = "Running"
            self.started_at = utc_now()
        for child in list(self.started.values()):
            if child.status not in ENDED:
                child.poll()
        stopped = any(
            c.status in ("Failed", "Canceled", "NotResponding") for c in self.started.values()
        )
        if not stopped:
            for name in self.nodes:
                if name not in self.started and self._ready(name):
                    self._start(name)
        if any(child.status not in ENDED for child in self.started.values()):
            return
        self.ended_at = utc_now()
        if stopped:
            self.current, self.error = "Failed", copy.deepcopy(PIPELINE_FAILED)
        elif len(self.started) == len(self.nodes):
            self.current = "Completed"

    def cancel(self) -> None:
        if self.status in ENDED:
            return
        self.canceled = True
        self.ended_at = utc_now()
        for child in self.started.values():
            child.cancel()

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.status == "Failed":
            details["error"] = self.error
        return details

    # ---- nodes -------------------------------------------------------------------------

    def _ready(self, name: str) -> bool:
        return all(
            node in self.started and self.started[node].status == "Completed"
            for node, _ in bindings(self.nodes[name]).values()
        )

    def _start(self, name: str) -> None:
        node = self.nodes[name]
        ml = sdk.ml()
        with sdk.quiet():
            entity = node._to_job()
        entity.name = str(uuid.uuid4())
        entity.experiment_name = self.entity.experiment_name
        entity.display_name = node.display_name or name
        entity.tags = dict(node.tags or {})
        entity.properties = {}
        if name in self.node_code:
            entity.code = str(self.node_code[name])
        bound = bindings(node)
        inputs = {}
        for key, given in (node.inputs or {}).items():
            if key in bound:
                writer, output = bound[key]
                inputs[key] = ml.Input(
                    type="uri_folder", path=self._written(writer, output), mode=given.mode
                )
            else:
                inputs[key] = self._resolved(copy.deepcopy(getattr(given, "_data", given)))
        entity.inputs = inputs
        key = self._reuse_key(name, entity)
        earlier = (
            None
            if self.force_rerun or not self._deterministic(node)
            else (self.service.completed_node(key))
        )
        if earlier is not None:
            entity.properties = {"azureml.isreused": "true", "azureml.reusedrunid": earlier.name}
            child = FakeJob(
                self.service,
                entity,
                Outcome(statuses=("Completed",), log_lines=()),
                parent=self.name,
                snapshot=self.node_snapshots[name],
            )
            child.outputs_registered = True  # it takes the earlier job's outputs
            child.started_at = child.ended_at = utc_now()
        else:
            child = FakeJob(
                self.service,
                entity,
                self.service.outcome_of(entity),
                parent=self.name,
                snapshot=self.node_snapshots[name],
            )
            child = self.service.start_trial(child)
        child.reuse_key = key
        self.started[name] = child
        self.children.append(child)
        self.service.jobs[child.name] = child

    def _written(self, writer: str, output: str) -> str:
        """What an input bound to `writer`'s `output` reads: the version it registered."""
        child = self.started[writer]
        reused = child.entity.properties.get("azureml.reusedrunid")
        source = self.service.jobs[reused] if reused else child
        registered = source.registered_outputs.get(output)
        if registered is not None:
            asset, version = registered["assetId"].split("/data/")[1].split("/versions/")
            return f"azureml:{asset}:{version}"
        path = getattr(source.entity.outputs.get(output), "path", None)
        return str(path or self.service.default_output_path(source.name, output)).replace(
            "${{name}}", source.name
        )

    def _resolved(self, given: Any) -> Any:
        """An input of `azureml:<name>@latest` reads the version latest as the node starts.

        The service resolves the label when the job runs (not checked live).
        """
        path = str(getattr(given, "path", "") or "")
        if path.endswith("@latest"):
            name = path.removeprefix("azureml:").removesuffix("@latest")
            latest = self.service.data(name, None)
            if latest is not None:
                given.path = f"azureml:{name}:{latest.version}"
        return given

    @staticmethod
    def _deterministic(node: Any) -> bool:
        component = getattr(node, "component", None)
        return getattr(component, "is_deterministic", True) is not False

    def _reuse_key(self, name: str, entity: Any) -> str:
        received = {
            "command": str(entity.command),
            "code": self.code_digests[name],
            "environment": str(entity.environment),
            "variables": dict(entity.environment_variables or {}),
            "compute": str(entity.compute),
            "inputs": {
                k: [str(getattr(v, "path", v)), str(getattr(v, "mode", ""))]
                for k, v in (entity.inputs or {}).items()
            },
            "outputs": {
                k: [str(v.path), str(v.mode), str(getattr(v, "name", ""))]
                for k, v in (entity.outputs or {}).items()
            },
        }
        return hashlib.sha256(json.dumps(received, sort_keys=True).encode()).hexdigest()


def _content_digest(root: Path, files: list[str]) -> str:
    content = hashlib.sha256()
    for relative in files:
        content.update(relative.encode() + b"\0" + (root / relative).read_bytes())
    return content.hexdigest()
