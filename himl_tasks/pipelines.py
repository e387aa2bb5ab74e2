"""Native pipelines, backend-neutral: named steps, each a job, passing datasets to each other.

```python
from himl_tasks import JobSpec, PipelineSpec, PipelineStep

pipeline = PipelineSpec(
    name="preprocess-then-train",
    steps=[
        PipelineStep("preprocess", JobSpec(entry_script="prep.py", input_datasets=["raw"],
                                           output_datasets=["features"])),
        PipelineStep("train", JobSpec(entry_script="train.py", input_datasets=["features"])),
    ],
    existing_datasets=["raw"],
)
pipeline.order  # ("preprocess", "train")
```

Steps are linked by dataset name, as their `JobSpec`s name datasets: a step's input that
another step writes (one of its `output_datasets`) is that step's output, and the step runs
after it, reading the version it wrote. Any other input is a dataset already in the workspace
and must be listed in `existing_datasets`: a name there is read from the workspace, a name a
step writes is handed on, and a name that is neither (a typo) is refused. `after` orders two
steps that share no dataset.

A pipeline is checked once, when made, before anything is submitted; its run order, each
step's upstream steps and dependants are worked out then.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import (
    EXPERIMENT_NAME_VARIABLE,
    FrozenMapping,
    JobSpec,
    parameter_schema,
    sanitize_experiment_name,
)

_PIPELINE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_PIPELINE_NAME_RULE = "letters, digits, '_' and '-', starting with a letter, at most 64 characters"
# What AzureML v2 takes as a pipeline node's name unchanged (a Python identifier, lower case:
# it refuses '-' and lowers capitals), so a step has one name on every backend.
_STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_STEP_NAME_RULE = (
    "lower-case letters, digits and '_', starting with a letter, at most 64 characters"
)


@dataclass(frozen=True, init=False)
class PipelineStep:
    """One step of a pipeline: a job, under a name unique in its pipeline.

    Args:
        name: The step's name: lower-case letters, digits and '_', starting with a letter, at
            most 64 characters (it names the step's child run and its node in AzureML's graph,
            where AzureML v2 takes no other names unchanged).
        job: The job the step runs. Its `input_datasets` may name other steps'
            `output_datasets`; see `PipelineSpec`.
        after: Names of steps this one runs after although it reads none of their outputs.
        allow_reuse: When a pipeline is submitted again, a step whose code (its snapshot's
            content), settings and input dataset versions equal those of an earlier
            completed run of the step does not run: it takes that run's outputs, as
            AzureML's pipelines do. False runs the step every time (e.g. a step that reads
            something outside its inputs).

    Raises:
        InvalidInputError: For an unusable name, a job that is not a `JobSpec`, or `after`
            that is not a list of step names.
    """

    name: str
    job: JobSpec
    after: tuple[str, ...]
    allow_reuse: bool

    def __init__(
        self, name: str, job: JobSpec, after: Sequence[str] = (), *, allow_reuse: bool = True
    ) -> None:
        if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
            raise InvalidInputError(f"{name!r} is not a usable step name: use {_STEP_NAME_RULE}")
        if not isinstance(job, JobSpec):
            raise InvalidInputError(f"step '{name}': job must be a JobSpec, not {job!r}")
        if (
            isinstance(after, str | bytes)
            or not isinstance(after, Sequence)
            or not all(isinstance(a, str) for a in after)
        ):
            raise InvalidInputError(
                f"step '{name}': after must be a list of step names, e.g. ['preprocess'], "
                f"not {after!r}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "job", job)
        if not isinstance(allow_reuse, bool):
            raise InvalidInputError(
                f"step '{name}': allow_reuse must be True or False, not {allow_reuse!r}"
            )
        object.__setattr__(self, "after", tuple(dict.fromkeys(after)))
        object.__setattr__(self, "allow_reuse", allow_reuse)

    @property
    def reads(self) -> tuple[str, ...]:
        """The names of the datasets the step's job reads."""
        return tuple(d.name for d in self.job.input_datasets)

    @property
    def writes(self) -> tuple[str, ...]:
        """The names of the datasets the step's job writes."""
        return tuple(d.name for d in self.job.output_datasets)


@dataclass(frozen=True, init=False)
class PipelineSpec:
    """A pipeline: named steps, each a job, whose inputs may be other steps' outputs.

    Args:
        name: The pipeline's name (what it is published and scheduled under): letters,
            digits, '_' and '-', starting with a letter, at most 64 characters.
        steps: The steps, at least one. Their order is kept where the datasets allow it.
        existing_datasets: The names of the datasets already in the workspace that steps
            read. Every input no step writes must be listed here; a listed name must be
            read by a step and written by none.
        experiment: The experiment the pipeline run and its steps' runs are in (default:
            $HIML_EXPERIMENT_NAME, else the pipeline's name). A step's job may leave its
            own experiment empty or give this one.
        display_name: A human-friendly name for the pipeline run.
        tags: Tags recorded with the pipeline run.

    Raises:
        InvalidInputError: Before anything is submitted, for no steps, two steps of one name,
            an `after` naming no step, two steps writing one dataset, an input that no step
            writes and that is not in `existing_datasets`, an existing dataset a step writes
            or no step reads, an input pinning a version of (or another datastore than) the
            output it reads, a step in another experiment, or steps that wait for each other
            in a cycle (the message names it).
    """

    name: str
    steps: tuple[PipelineStep, ...]
    existing_datasets: tuple[str, ...]
    experiment: str
    display_name: str
    tags: Mapping[str, str]
    # Worked out once, when made, from the fields above.
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _upstream_of: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _writer: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        name: str,
        steps: Sequence[PipelineStep],
        *,
        existing_datasets: Sequence[str] = (),
        experiment: str = "",
        display_name: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _PIPELINE_NAME.fullmatch(name):
            raise InvalidInputError(
                f"{name!r} is not a usable pipeline name: use {_PIPELINE_NAME_RULE}"
            )
        for text, value in (("experiment", experiment), ("display_name", display_name)):
            if not isinstance(value, str):
                raise InvalidInputError(f"pipeline '{name}': {text} must be text, not {value!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "steps", _steps(name, steps))
        object.__setattr__(self, "existing_datasets", _names(name, existing_datasets))
        object.__setattr__(self, "experiment", experiment)
        object.__setattr__(self, "display_name", display_name)
        object.__setattr__(self, "tags", FrozenMapping(_tags(name, tags)))
        self._check_experiments()
        writers = self._writers()
        upstream = self._upstream(writers)
        object.__setattr__(self, "_writer", writers)
        object.__setattr__(self, "_order", self._run_order(upstream))
        object.__setattr__(self, "_upstream_of", upstream)

    @property
    def order(self) -> tuple[str, ...]:
        """The step names in the order to run them: each after its upstream steps.

        Among steps that could run next, the one given first comes first: steps given in a
        workable order keep it.
        """
        return self._order

    @property
    def ordered_steps(self) -> tuple[PipelineStep, ...]:
        """The steps in `order`."""
        return tuple(self.step(name) for name in self.order)

    @property
    def existing_inputs(self) -> tuple[DatasetConfig, ...]:
        """The inputs steps read from the workspace (no step writes them), each once, in `order`."""
        return tuple(
            dict.fromkeys(
                config
                for step in self.ordered_steps
                for config in step.job.input_datasets
                if config.name not in self._writer
            )
        )

    def step(self, name: str) -> PipelineStep:
        """The step of that name.

        Raises:
            InvalidInputError: If the pipeline has no such step.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise InvalidInputError(
            f"pipeline '{self.name}' has no step '{name}'; its steps are "
            f"{', '.join(s.name for s in self.steps)}"
        )

    def upstream(self, name: str) -> tuple[str, ...]:
        """The steps step `name` waits for, in `order`: it reads their outputs or runs after them.

        Raises:
            InvalidInputError: If the pipeline has no such step.
        """
        self.step(name)
        upstream = self._upstream_of
        return tuple(s for s in self.order if s in upstream[name])

    def dependants(self, name: str) -> tuple[str, ...]:
        """The steps that wait for step `name`, directly or through others, in `order`.

        When the step fails, none of them can run.

        Raises:
            InvalidInputError: If the pipeline has no such step.
        """
        self.step(name)
        upstream = self._upstream_of
        waiting = {name}
        for step in self.order:  # upstream steps come first, so one pass finds them all
            if upstream[step] & waiting:
                waiting.add(step)
        return tuple(s for s in self.order if s in waiting and s != name)

    def step_writing(self, dataset: str) -> str | None:
        """The step that writes dataset `dataset`, or None for an existing dataset.

        Raises:
            InvalidInputError: If no step writes it and it is not an existing dataset.
        """
        writers = self._writer
        if dataset in writers:
            return writers[dataset]
        if dataset in self.existing_datasets:
            return None
        raise InvalidInputError(
            f"dataset '{dataset}' is neither written by a step of pipeline '{self.name}' nor "
            "in its existing_datasets"
        )

    def experiment_name(self, environ: Mapping[str, str] | None = None) -> str:
        """The experiment's name, sanitised for AzureML.

        It is `experiment`, else $HIML_EXPERIMENT_NAME, else the pipeline's name.

        Args:
            environ: The environment variables to read (default: the process's).
        """
        env = os.environ if environ is None else environ
        return sanitize_experiment_name(
            self.experiment or env.get(EXPERIMENT_NAME_VARIABLE) or self.name
        )

    def to_json(self) -> str:
        """The pipeline as JSON text, for handing it to another process.

        `PipelineSpec.from_json` makes an equal pipeline of it.
        """
        return json.dumps(
            {
                "name": self.name,
                "steps": [
                    {
                        "name": s.name,
                        "job": json.loads(s.job.to_json()),
                        "after": list(s.after),
                        "allow_reuse": s.allow_reuse,
                    }
                    for s in self.steps
                ],
                "existing_datasets": list(self.existing_datasets),
                "experiment": self.experiment,
                "display_name": self.display_name,
                "tags": dict(self.tags),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        """The pipeline `to_json` wrote.

        Raises:
            InvalidInputError: If the text is not a pipeline's JSON, or the pipeline it holds
                is refused (the same message as when it is made).
        """
        try:
            fields = json.loads(text)
        except ValueError as error:
            raise InvalidInputError(f"not the JSON of a PipelineSpec: {error!r}") from error
        return _from_fields(fields, what="JSON")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """How pydantic makes a pipeline, e.g. a Prefect flow's or task's parameter.

        A deployment's parameters arrive as JSON: the pipeline's fields as `to_json` writes
        them, or as a person types them (a step's `after` and `allow_reuse` left out, its job
        as `JobSpec` takes its fields). They are checked by the pipeline itself, as any
        pipeline is.
        """
        return parameter_schema(_pipeline_from_parameter)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        """The JSON schema of a pipeline parameter (an object of the pipeline's fields)."""
        return {
            "type": "object",
            "title": "PipelineSpec",
            "description": "A pipeline: name, steps (each a name, a job, after, allow_reuse), "
            "existing_datasets, experiment, ...",
        }

    def _check_experiments(self) -> None:
        for step in self.steps:
            if step.job.experiment and step.job.experiment != self.experiment:
                raise InvalidInputError(
                    f"step '{step.name}' sets experiment '{step.job.experiment}', but a "
                    f"pipeline's steps run in the pipeline's experiment "
                    f"('{self.experiment}'): leave the step's experiment empty and set "
                    "PipelineSpec.experiment"
                )

    def _writers(self) -> dict[str, str]:
        """Each dataset a step writes, with that step's name; refuses a second writer."""
        writers: dict[str, str] = {}
        for step in self.steps:
            for dataset in step.writes:
                if dataset in writers:
                    raise InvalidInputError(
                        f"dataset '{dataset}' is written by steps '{writers[dataset]}' and "
                        f"'{step.name}': in a pipeline a dataset has one writer; give each "
                        "step its own output dataset"
                    )
                writers[dataset] = step.name
        for dataset in self.existing_datasets:
            if dataset in writers:
                raise InvalidInputError(
                    f"dataset '{dataset}' is in existing_datasets and written by step "
                    f"'{writers[dataset]}': a step's input of that name would be ambiguous; "
                    "remove it from existing_datasets, or give the output another name"
                )
        read = {dataset for step in self.steps for dataset in step.reads}
        unread = [d for d in self.existing_datasets if d not in read]
        if unread:
            raise InvalidInputError(
                f"existing_datasets names '{unread[0]}', which no step of pipeline "
                f"'{self.name}' reads: remove it, or add it to a step's input_datasets"
            )
        return writers

    def _upstream(self, writers: Mapping[str, str]) -> dict[str, frozenset[str]]:
        """The steps each step waits for; refuses inputs and `after`s that name nothing."""
        names = [step.name for step in self.steps]
        outputs = {d.name: d for step in self.steps for d in step.job.output_datasets}
        upstream: dict[str, frozenset[str]] = {}
        for step in self.steps:
            waits = set()
            for config in step.job.input_datasets:
                if config.name in writers:
                    _check_handed_on(step.name, writers[config.name], config, outputs)
                    waits.add(writers[config.name])
                elif config.name not in self.existing_datasets:
                    raise InvalidInputError(
                        f"step '{step.name}' reads dataset '{config.name}', which no step of "
                        f"pipeline '{self.name}' writes and which is not in "
                        "existing_datasets: to read a dataset already in the workspace, "
                        "list it in existing_datasets; to read another step's output, use "
                        "the name in that step's output_datasets"
                        + (f" ({', '.join(sorted(writers))})" if writers else "")
                    )
            for other in step.after:
                if other not in names:
                    raise InvalidInputError(
                        f"step '{step.name}' runs after '{other}', which is not a step of "
                        f"pipeline '{self.name}'; its steps are {', '.join(names)}"
                    )
                waits.add(other)
            upstream[step.name] = frozenset(waits)
        return upstream

    def _run_order(self, upstream: Mapping[str, frozenset[str]]) -> tuple[str, ...]:
        """A topological order, stable: of the steps that could run next, the first given."""
        names = [step.name for step in self.steps]
        done: list[str] = []
        left = list(names)
        while left:
            ready = next((n for n in left if upstream[n] <= set(done)), None)
            if ready is None:
                cycle = _cycle(left, upstream)
                raise InvalidInputError(
                    f"the steps of pipeline '{self.name}' wait for each other in a cycle, "
                    f"{' -> '.join(cycle)} (each step reads an output of, or runs after, the "
                    "step before it), so none of them can start: break the cycle"
                )
            done.append(ready)
            left.remove(ready)
        return tuple(done)


def _pipeline_from_parameter(value: object) -> PipelineSpec:
    if isinstance(value, PipelineSpec):
        return value
    if isinstance(value, Mapping):
        return _from_fields(value)
    raise InvalidInputError(f"a PipelineSpec, or a mapping of its fields, not {value!r}")


def _from_fields(fields: object, *, what: str = "fields") -> PipelineSpec:
    """The pipeline of its fields, as `to_json` writes them.

    A step's `after` and `allow_reuse` may be left out; its job may be a `JobSpec`.

    Raises:
        InvalidInputError: If they are not a pipeline's fields, or the pipeline is refused.
    """
    try:
        if not isinstance(fields, Mapping):
            raise TypeError(f"{fields!r} is not a mapping of fields")
        values = dict(fields)
        steps = [
            PipelineStep(
                name=step["name"],
                job=step["job"]
                if isinstance(step["job"], JobSpec)
                else JobSpec.from_json(json.dumps(step["job"])),
                after=step.get("after", ()),
                allow_reuse=step.get("allow_reuse", True),
            )
            for step in values.pop("steps")
        ]
        return PipelineSpec(steps=steps, **values)
    except InvalidInputError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise InvalidInputError(f"not the {what} of a PipelineSpec: {error!r}") from error


def _steps(pipeline: str, steps: object) -> tuple[PipelineStep, ...]:
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
        raise InvalidInputError(
            f"pipeline '{pipeline}': steps must be a list of PipelineSteps, not {steps!r}"
        )
    wrong = [s for s in steps if not isinstance(s, PipelineStep)]
    if wrong:
        raise InvalidInputError(
            f"pipeline '{pipeline}': steps must be PipelineSteps, not {wrong[0]!r}"
        )
    if not steps:
        raise InvalidInputError(f"pipeline '{pipeline}' needs at least one step")
    names = [s.name for s in steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInputError(
            f"pipeline '{pipeline}' has more than one step named "
            f"{', '.join(repr(n) for n in duplicates)}: give each step its own name"
        )
    return tuple(steps)


def _names(pipeline: str, datasets: object) -> tuple[str, ...]:
    if (
        isinstance(datasets, str | bytes)
        or not isinstance(datasets, Sequence)
        or not all(isinstance(d, str) for d in datasets)
    ):
        raise InvalidInputError(
            f"pipeline '{pipeline}': existing_datasets must be a list of dataset names, "
            f"e.g. ['raw_images'], not {datasets!r}"
        )
    return tuple(dict.fromkeys(datasets))


def _tags(pipeline: str, tags: object) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidInputError(
            f"pipeline '{pipeline}': tags must map strings to strings, not {tags!r}"
        )
    return dict(tags)


def _check_handed_on(
    step: str, writer: str, config: DatasetConfig, outputs: Mapping[str, DatasetConfig]
) -> None:
    """An input another step writes reads that step's version, in that step's datastore."""
    if config.version is not None:
        raise InvalidInputError(
            f"step '{step}' reads version {config.version} of dataset '{config.name}', which "
            f"step '{writer}' writes: it reads the version that step writes; remove the version"
        )
    written = outputs[config.name].datastore
    if config.datastore and config.datastore != written:
        raise InvalidInputError(
            f"step '{step}' reads dataset '{config.name}' from datastore "
            f"'{config.datastore}', but step '{writer}' writes it to "
            f"'{written or 'the default datastore'}': leave the input's datastore empty or "
            "give the same one"
        )


def _cycle(left: Sequence[str], upstream: Mapping[str, frozenset[str]]) -> list[str]:
    """A cycle among steps none of which can run, as `a -> b -> a`, from its first-given step.

    Each step left waits for another step left, so walking upstream from any of them comes
    back to a step already seen.
    """
    walk = [left[0]]
    while True:
        step = walk[-1]
        previous = next(n for n in left if n in upstream[step])
        if previous in walk:
            loop = walk[walk.index(previous) :]
            loop.reverse()  # walking upstream; the message reads downstream
            start = min(range(len(loop)), key=lambda i: left.index(loop[i]))
            loop = loop[start:] + loop[:start]
            return [*loop, loop[0]]
        walk.append(previous)
