"""A pipeline is checked once, when made, before anything is submitted, and knows its run order."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

import himl_tasks
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipelines import PipelineSpec, PipelineStep

ROOT = Path("/project")


def job(
    reads: Sequence[DatasetConfig | str] = (),
    writes: Sequence[DatasetConfig | str] = (),
    **fields: object,
) -> JobSpec:
    """A step's job reading and writing those datasets."""
    return JobSpec(
        entry_script="step.py",
        snapshot_root=ROOT,
        input_datasets=reads,
        output_datasets=writes,
        **fields,  # type: ignore[arg-type]
    )


def step(
    name: str,
    reads: Sequence[DatasetConfig | str] = (),
    writes: Sequence[DatasetConfig | str] = (),
    after: Sequence[str] = (),
) -> PipelineStep:
    return PipelineStep(name, job(reads, writes), after=after)


def preprocess_then_train() -> PipelineSpec:
    return PipelineSpec(
        "preprocess-then-train",
        [
            step("preprocess", reads=["raw"], writes=["features"]),
            step("train", reads=["features"], writes=["model"]),
        ],
        existing_datasets=["raw"],
        experiment="imaging",
        display_name="nightly",
        tags={"team": "imaging"},
    )


def refusal(make: object) -> str:
    assert callable(make)
    with pytest.raises(InvalidInputError) as raised:
        make()
    return str(raised.value)


# The order


def test_steps_given_in_a_workable_order_run_in_that_order() -> None:
    pipeline = preprocess_then_train()

    assert pipeline.order == ("preprocess", "train")
    assert pipeline.ordered_steps == pipeline.steps


def test_a_step_that_reads_another_s_output_runs_after_it_whatever_the_given_order() -> None:
    pipeline = PipelineSpec(
        "p",
        [
            step("evaluate", reads=["model", "features"]),
            step("train", reads=["features"], writes=["model"]),
            step("preprocess", reads=["raw"], writes=["features"]),
        ],
        existing_datasets=["raw"],
    )

    assert pipeline.order == ("preprocess", "train", "evaluate")
    assert [s.name for s in pipeline.ordered_steps] == list(pipeline.order)
    assert [s.name for s in pipeline.steps] == ["evaluate", "train", "preprocess"]  # kept


def test_among_steps_that_could_run_next_the_first_given_comes_first() -> None:
    # A diamond given as: join, right, left, top. left and right both wait for top only.
    pipeline = PipelineSpec(
        "diamond",
        [
            step("join", reads=["l", "r"]),
            step("right", reads=["t"], writes=["r"]),
            step("left", reads=["t"], writes=["l"]),
            step("top", writes=["t"]),
            step("alone"),
        ],
    )

    assert pipeline.order == ("top", "right", "left", "join", "alone")


def test_after_orders_steps_that_share_no_dataset() -> None:
    pipeline = PipelineSpec("p", [step("report", after=["clean"]), step("clean")])

    assert pipeline.order == ("clean", "report")
    assert pipeline.upstream("report") == ("clean",)
    assert pipeline.steps[0].after == ("clean",)


def test_after_naming_a_step_twice_or_one_already_read_from_is_one_wait() -> None:
    pipeline = PipelineSpec(
        "p", [step("a", writes=["x"]), step("b", reads=["x"], after=["a", "a"])]
    )

    assert pipeline.steps[1].after == ("a",)
    assert pipeline.upstream("b") == ("a",)


@pytest.mark.parametrize("seed", range(40))
def test_the_order_of_any_acyclic_pipeline_runs_each_step_after_its_upstream_steps(
    seed: int,
) -> None:
    # Random graphs: step i may read the output of, or run after, any step j < i; the steps
    # are then given shuffled.
    rng = random.Random(seed)
    count = rng.randint(1, 9)
    waits = {i: {j for j in range(i) if rng.random() < 0.3} for i in range(count)}
    steps = []
    for i in range(count):
        by_data = sorted(j for j in waits[i] if rng.random() < 0.5)
        by_after = sorted(waits[i] - set(by_data))
        steps.append(
            step(
                f"s{i}",
                reads=[f"d{j}" for j in by_data],
                writes=[f"d{i}"],
                after=[f"s{j}" for j in by_after],
            )
        )
    given = steps[:]
    rng.shuffle(given)

    pipeline = PipelineSpec("random", given)

    position = {name: index for index, name in enumerate(pipeline.order)}
    assert sorted(pipeline.order) == sorted(s.name for s in given)
    for i in range(count):
        assert set(pipeline.upstream(f"s{i}")) == {f"s{j}" for j in waits[i]}
        for j in waits[i]:
            assert position[f"s{j}"] < position[f"s{i}"]
    # Given in a workable order (the steps' own), that order is kept.
    assert PipelineSpec("random", steps).order == tuple(s.name for s in steps)


# Upstream steps, dependants, writers


def test_upstream_steps_are_those_read_from_or_run_after_in_run_order() -> None:
    pipeline = PipelineSpec(
        "p",
        [
            step("evaluate", reads=["model", "features"], after=["report"]),
            step("report"),
            step("train", reads=["features"], writes=["model"]),
            step("preprocess", writes=["features"]),
        ],
    )

    assert pipeline.upstream("evaluate") == ("report", "preprocess", "train")
    assert pipeline.upstream("preprocess") == ()


def test_dependants_are_every_step_waiting_directly_or_through_others() -> None:
    pipeline = PipelineSpec(
        "p",
        [
            step("preprocess", writes=["features"]),
            step("train", reads=["features"], writes=["model"]),
            step("evaluate", reads=["model"]),
            step("publish", after=["evaluate"]),
            step("unrelated"),
        ],
    )

    assert pipeline.dependants("preprocess") == ("train", "evaluate", "publish")
    assert pipeline.dependants("evaluate") == ("publish",)
    assert pipeline.dependants("unrelated") == ()


def test_a_dataset_is_written_by_its_step_or_read_from_the_workspace() -> None:
    pipeline = preprocess_then_train()

    assert pipeline.step_writing("features") == "preprocess"
    assert pipeline.step_writing("model") == "train"
    assert pipeline.step_writing("raw") is None
    assert refusal(lambda: pipeline.step_writing("rwa")) == (
        "dataset 'rwa' is neither written by a step of pipeline 'preprocess-then-train' nor in "
        "its existing_datasets"
    )


def test_a_step_is_found_by_its_name_and_an_unknown_name_is_refused() -> None:
    pipeline = preprocess_then_train()

    assert pipeline.step("train").job.input_datasets == (DatasetConfig("features"),)
    message = (
        "pipeline 'preprocess-then-train' has no step 'trian'; its steps are preprocess, train"
    )
    assert refusal(lambda: pipeline.step("trian")) == message
    assert refusal(lambda: pipeline.upstream("trian")) == message
    assert refusal(lambda: pipeline.dependants("trian")) == message


# Refusals, each before anything is submitted


def test_a_pipeline_without_steps_is_refused() -> None:
    assert refusal(lambda: PipelineSpec("p", [])) == "pipeline 'p' needs at least one step"


def test_two_steps_of_one_name_are_refused() -> None:
    assert refusal(
        lambda: PipelineSpec("p", [step("a"), step("b"), step("a"), step("b"), step("c")])
    ) == ("pipeline 'p' has more than one step named 'a', 'b': give each step its own name")


def test_after_naming_no_step_is_refused() -> None:
    assert refusal(lambda: PipelineSpec("p", [step("clean"), step("report", after=["claen"])])) == (
        "step 'report' runs after 'claen', which is not a step of pipeline 'p'; its steps "
        "are clean, report"
    )


def test_two_steps_writing_one_dataset_are_refused() -> None:
    assert refusal(
        lambda: PipelineSpec("p", [step("a", writes=["x"]), step("b", writes=["y", "x"])])
    ) == (
        "dataset 'x' is written by steps 'a' and 'b': in a pipeline a dataset has one "
        "writer; give each step its own output dataset"
    )


def test_an_input_no_step_writes_and_not_an_existing_dataset_is_refused() -> None:
    assert refusal(
        lambda: PipelineSpec(
            "p", [step("prep", writes=["features"]), step("train", reads=["featrues"])]
        )
    ) == (
        "step 'train' reads dataset 'featrues', which no step of pipeline 'p' writes and "
        "which is not in existing_datasets: to read a dataset already in the workspace, list "
        "it in existing_datasets; to read another step's output, use the name in that step's "
        "output_datasets (features)"
    )
    assert refusal(lambda: PipelineSpec("p", [step("train", reads=["raw"])])) == (
        "step 'train' reads dataset 'raw', which no step of pipeline 'p' writes and which is "
        "not in existing_datasets: to read a dataset already in the workspace, list it in "
        "existing_datasets; to read another step's output, use the name in that step's "
        "output_datasets"
    )


def test_an_existing_dataset_that_a_step_writes_is_refused() -> None:
    assert refusal(
        lambda: PipelineSpec(
            "p",
            [step("prep", writes=["features"]), step("train", reads=["features"])],
            existing_datasets=["features"],
        )
    ) == (
        "dataset 'features' is in existing_datasets and written by step 'prep': a step's "
        "input of that name would be ambiguous; remove it from existing_datasets, or give "
        "the output another name"
    )


def test_an_existing_dataset_no_step_reads_is_refused() -> None:
    assert refusal(
        lambda: PipelineSpec("p", [step("train", reads=["raw"])], existing_datasets=["raw", "rwa"])
    ) == (
        "existing_datasets names 'rwa', which no step of pipeline 'p' reads: remove it, or "
        "add it to a step's input_datasets"
    )


def test_an_input_pinning_a_version_of_another_step_s_output_is_refused() -> None:
    assert refusal(
        lambda: PipelineSpec(
            "p",
            [
                step("prep", writes=["features"]),
                step("train", reads=[DatasetConfig("features", version=3)]),
            ],
        )
    ) == (
        "step 'train' reads version 3 of dataset 'features', which step 'prep' writes: it "
        "reads the version that step writes; remove the version"
    )


def test_an_input_in_another_datastore_than_the_output_it_reads_is_refused() -> None:
    written = DatasetConfig("features", datastore="lake")

    assert refusal(
        lambda: PipelineSpec(
            "p",
            [
                step("prep", writes=[written]),
                step("train", reads=[DatasetConfig("features", datastore="other")]),
            ],
        )
    ) == (
        "step 'train' reads dataset 'features' from datastore 'other', but step 'prep' "
        "writes it to 'lake': leave the input's datastore empty or give the same one"
    )
    assert refusal(
        lambda: PipelineSpec(
            "p",
            [
                step("prep", writes=["features"]),
                step("train", reads=[DatasetConfig("features", datastore="other")]),
            ],
        )
    ) == (
        "step 'train' reads dataset 'features' from datastore 'other', but step 'prep' "
        "writes it to 'the default datastore': leave the input's datastore empty or give "
        "the same one"
    )
    for read in ("features", DatasetConfig("features", datastore="lake")):
        pipeline = PipelineSpec("p", [step("prep", writes=[written]), step("train", reads=[read])])
        assert pipeline.upstream("train") == ("prep",)


def test_a_step_in_another_experiment_than_the_pipeline_s_is_refused() -> None:
    def pipeline(step_experiment: str, experiment: str = "") -> PipelineSpec:
        return PipelineSpec(
            "p", [PipelineStep("a", job(experiment=step_experiment))], experiment=experiment
        )

    assert refusal(lambda: pipeline("mine")) == (
        "step 'a' sets experiment 'mine', but a pipeline's steps run in the pipeline's "
        "experiment (''): leave the step's experiment empty and set PipelineSpec.experiment"
    )
    assert refusal(lambda: pipeline("mine", "theirs")) == (
        "step 'a' sets experiment 'mine', but a pipeline's steps run in the pipeline's "
        "experiment ('theirs'): leave the step's experiment empty and set "
        "PipelineSpec.experiment"
    )
    assert pipeline("same", "same").experiment == "same"
    assert pipeline("", "same").experiment == "same"


def test_steps_waiting_for_each_other_through_datasets_are_refused_naming_the_cycle() -> None:
    assert refusal(
        lambda: PipelineSpec(
            "p",
            [
                step("source", writes=["s"]),
                step("a", reads=["s", "y"], writes=["x"]),
                step("b", reads=["x"], writes=["y"]),
            ],
        )
    ) == (
        "the steps of pipeline 'p' wait for each other in a cycle, a -> b -> a (each step "
        "reads an output of, or runs after, the step before it), so none of them can start: "
        "break the cycle"
    )


def test_a_cycle_is_named_from_its_first_given_step_in_the_direction_data_flows() -> None:
    # c waits for b, b for a, a for c; d waits for the cycle but is not in it.
    assert refusal(
        lambda: PipelineSpec(
            "p",
            [
                step("d", after=["c"]),
                step("c", reads=["b_out"], writes=["c_out"]),
                step("a", after=["c"], writes=["a_out"]),
                step("b", reads=["a_out"], writes=["b_out"]),
            ],
        )
    ) == (
        "the steps of pipeline 'p' wait for each other in a cycle, c -> a -> b -> c (each "
        "step reads an output of, or runs after, the step before it), so none of them can "
        "start: break the cycle"
    )


def test_a_step_running_after_itself_is_a_cycle_of_one() -> None:
    assert refusal(lambda: PipelineSpec("p", [step("a", after=["a"])])) == (
        "the steps of pipeline 'p' wait for each other in a cycle, a -> a (each step reads "
        "an output of, or runs after, the step before it), so none of them can start: break "
        "the cycle"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: PipelineStep("train step", job()),
            "'train step' is not a usable step name: use lower-case letters, digits and '_', "
            "starting with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineStep("x" * 65, job()),
            f"'{'x' * 65}' is not a usable step name: use lower-case letters, digits and '_', "
            "starting with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineStep("pre-process", job()),
            "'pre-process' is not a usable step name: use lower-case letters, digits and '_', "
            "starting with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineStep("train\n", job()),
            "'train\\n' is not a usable step name: use lower-case letters, digits and '_', "
            "starting with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineStep("Train", job()),
            "'Train' is not a usable step name: use lower-case letters, digits and '_', "
            "starting with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineStep("train", "train.py"),  # type: ignore[arg-type]
            "step 'train': job must be a JobSpec, not 'train.py'",
        ),
        (
            lambda: PipelineStep("train", job(), after="prep"),
            "step 'train': after must be a list of step names, e.g. ['preprocess'], not 'prep'",
        ),
        (
            lambda: PipelineStep("train", job(), after=[1]),  # type: ignore[list-item]
            "step 'train': after must be a list of step names, e.g. ['preprocess'], not [1]",
        ),
        (
            lambda: PipelineSpec("-p", [step("a")]),
            "'-p' is not a usable pipeline name: use letters, digits, '_' and '-', starting "
            "with a letter, at most 64 characters",
        ),
        (
            lambda: PipelineSpec("p", step("a")),  # type: ignore[arg-type]
            "pipeline 'p': steps must be a list of PipelineSteps, not " + repr(step("a")),
        ),
        (
            lambda: PipelineSpec("p", [job()]),  # type: ignore[list-item]
            f"pipeline 'p': steps must be PipelineSteps, not {job()!r}",
        ),
        (
            lambda: PipelineSpec("p", [step("a", reads=["raw"])], existing_datasets="raw"),
            "pipeline 'p': existing_datasets must be a list of dataset names, e.g. "
            "['raw_images'], not 'raw'",
        ),
        (
            lambda: PipelineSpec("p", [step("a")], tags={"n": 1}),  # type: ignore[dict-item]
            "pipeline 'p': tags must map strings to strings, not {'n': 1}",
        ),
        (
            lambda: PipelineSpec("p", [step("a")], display_name=None),  # type: ignore[arg-type]
            "pipeline 'p': display_name must be text, not None",
        ),
    ],
)
def test_fields_of_the_wrong_kind_are_refused(make: object, message: str) -> None:
    assert refusal(make) == message


def test_a_changed_copy_is_checked_again() -> None:
    pipeline = preprocess_then_train()

    assert refusal(lambda: dataclasses.replace(pipeline, existing_datasets=())).startswith(
        "step 'preprocess' reads dataset 'raw', which no step"
    )


# Made once, travelling between processes


def test_a_pipeline_is_frozen_and_hashable() -> None:
    pipeline = preprocess_then_train()

    with pytest.raises(dataclasses.FrozenInstanceError):
        pipeline.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pipeline.tags["team"] = "other"  # type: ignore[index]
    assert hash(pipeline) == hash(preprocess_then_train())
    assert pipeline == preprocess_then_train()
    assert pipeline.steps[0].reads == ("raw",)
    assert pipeline.steps[0].writes == ("features",)


def test_a_pipeline_round_trips_through_json() -> None:
    pipeline = PipelineSpec(
        "p",
        [
            PipelineStep(
                "prep",
                job(
                    reads=[DatasetConfig("raw", datastore="lake", version=2, use_mounting=True)],
                    writes=[DatasetConfig("features", target_folder=Path("/out"))],
                    args=["--fast"],
                    compute="cpu",
                    max_run_duration="1h",
                ),
            ),
            PipelineStep("report", job(), allow_reuse=False),
            step("train", reads=["features"], after=["report"]),
        ],
        existing_datasets=["raw"],
        experiment="imaging",
        display_name="nightly",
        tags={"team": "imaging"},
    )

    text = pipeline.to_json()
    again = PipelineSpec.from_json(text)

    assert again == pipeline
    assert again.order == pipeline.order
    assert again.to_json() == text
    fields = json.loads(text)
    assert sorted(fields) == [
        "display_name", "existing_datasets", "experiment", "name", "steps", "tags",
    ]  # fmt: skip
    assert [s["after"] for s in fields["steps"]] == [[], [], ["report"]]
    assert [s.allow_reuse for s in again.steps] == [True, False, True]


def test_allow_reuse_is_true_or_false() -> None:
    with pytest.raises(InvalidInputError, match="allow_reuse must be True or False, not 'no'"):
        PipelineStep("prep", job(), allow_reuse="no")  # type: ignore[arg-type]


def test_json_that_is_no_pipeline_is_refused() -> None:
    assert refusal(lambda: PipelineSpec.from_json("[1]")).startswith(
        "not the JSON of a PipelineSpec: "
    )
    assert refusal(lambda: PipelineSpec.from_json('{"name": "p"}')) == (
        "not the JSON of a PipelineSpec: KeyError('steps')"
    )
    assert refusal(lambda: PipelineSpec.from_json("{")).startswith(
        "not the JSON of a PipelineSpec: JSONDecodeError("
    )


def test_a_refused_pipeline_in_json_is_refused_with_its_own_message() -> None:
    fields = json.loads(preprocess_then_train().to_json())
    fields["existing_datasets"] = []

    assert refusal(lambda: PipelineSpec.from_json(json.dumps(fields))).startswith(
        "step 'preprocess' reads dataset 'raw', which no step of pipeline "
        "'preprocess-then-train' writes"
    )


def test_the_experiment_is_the_pipeline_s_else_the_environment_s_else_its_name() -> None:
    pipeline = PipelineSpec("nightly-train", [step("a")])

    assert pipeline.experiment_name({}) == "nightly-train"
    assert pipeline.experiment_name({"HIML_EXPERIMENT_NAME": "team x"}) == "team_x"
    assert (
        dataclasses.replace(pipeline, experiment="mine").experiment_name(
            {"HIML_EXPERIMENT_NAME": "team"}
        )
        == "mine"
    )


def test_the_pipeline_types_are_public() -> None:
    assert himl_tasks.PipelineSpec is PipelineSpec
    assert himl_tasks.PipelineStep is PipelineStep
