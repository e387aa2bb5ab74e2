"""A JobSpec is normalised once, when made, and travels between processes unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import himl_tasks.job_spec
from himl_tasks.datasets import DatasetConfig, as_dataset_configs
from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.secret_reference import SecretReference


def full_spec(root: Path) -> JobSpec:
    """A spec with a value in every kind of field."""
    return JobSpec(
        entry_script="jobs/train.py",
        args=["--epochs", "3", "--azureml"],
        snapshot_root=root,
        ignored_folders=["data"],
        conda_environment_file=root / "environment.yml",
        private_pip_wheel_path=root / "dist" / "pkg-1.0-py3-none-any.whl",
        compute="gpu",
        num_nodes=2,
        processes_per_node=4,
        priority="low_priority",  # type: ignore[arg-type]  # as a Prefect parameter carries it
        input_datasets=["scans", DatasetConfig("labels", version=3, use_mounting=True)],
        output_datasets=[DatasetConfig("features", datastore="lake", target_folder=Path("/out"))],
        environment_variables={"MODE": "fast", "TOKEN": SecretReference("API_TOKEN")},
        tags={"team": "imaging"},
        experiment="exp",
        display_name="first try",
        max_run_duration="3.5h",
        resume_from="exp:run_1",
    )


def test_a_spec_s_folders_do_not_change_when_the_process_changes_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    spec = JobSpec(entry_script="train.py", conda_environment_file="environment.yml")

    monkeypatch.chdir(elsewhere)

    assert spec.snapshot_root == spec.snapshot_root == project
    assert spec.entry_script == spec.entry_script == project / "train.py"
    assert spec.recovery_file_folder == project
    assert spec.conda_environment_file == project / "environment.yml"


def test_a_relative_entry_script_is_taken_from_the_snapshot_root(tmp_path: Path) -> None:
    spec = JobSpec(entry_script="jobs/train.py", snapshot_root=tmp_path)

    assert spec.entry_script == tmp_path / "jobs" / "train.py"
    assert spec.experiment_name() == "train"


def test_a_duration_is_parsed_once_when_the_spec_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = JobSpec(module="train", snapshot_root=tmp_path, max_run_duration="3.5h")

    def parse_again(text: object) -> float:
        raise AssertionError(f"max_run_duration parsed again: {text!r}")

    monkeypatch.setattr(himl_tasks.job_spec, "parse_duration", parse_again)
    assert spec.max_run_duration == spec.max_run_duration == 12600.0


def test_making_a_spec_again_from_its_own_fields_gives_an_equal_spec(tmp_path: Path) -> None:
    spec = full_spec(tmp_path)
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}

    assert JobSpec(**fields) == spec
    assert dataclasses.replace(spec) == spec
    assert spec.priority is Priority.LOW_PRIORITY
    assert spec.input_datasets[0] == DatasetConfig("scans")


def test_a_spec_round_trips_through_json_exactly(tmp_path: Path) -> None:
    spec = full_spec(tmp_path)

    again = JobSpec.from_json(spec.to_json())

    assert again == spec
    assert isinstance(again.snapshot_root, Path) and isinstance(again.entry_script, Path)
    assert again.environment_variables["TOKEN"] == SecretReference("API_TOKEN")
    assert again.output_datasets[0].target_folder == Path("/out")
    assert again.max_run_duration == 12600.0


def test_text_that_is_not_a_spec_s_json_is_refused(tmp_path: Path) -> None:
    from himl_tasks.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not the JSON of a JobSpec"):
        JobSpec.from_json('{"entry_script": "a.py", "colour": "blue"}')


@pytest.mark.parametrize(
    "text",
    [
        '{"module": "m", "environment_variables": []}',
        '{"module": "m", "tags": "x"}',
        '{"module": "m", "input_datasets": [5]}',
    ],
)
def test_json_whose_fields_have_the_wrong_shape_is_refused_as_not_a_spec(text: str) -> None:
    from himl_tasks.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not the JSON of a JobSpec|must|dataset name"):
        JobSpec.from_json(text)


def test_json_may_name_datasets_as_the_constructor_does(tmp_path: Path) -> None:
    # A deployment's parameters are typed by people: a dataset by its name, as in hi-ml.
    text = json.dumps({"module": "m", "snapshot_root": str(tmp_path), "input_datasets": ["a"]})
    assert JobSpec.from_json(text).input_datasets == (DatasetConfig("a"),)


@pytest.mark.parametrize("module", [5, ["train"], b"train"])
def test_a_module_that_is_not_text_is_refused(module: object, tmp_path: Path) -> None:
    from himl_tasks.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="module must be"):
        JobSpec(module=module, snapshot_root=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["HIML_IN_JOB", "HIML_RUN_ID", "HIML_WORKSPACE", "HIML_RESUME_FROM", "HIML_INPUT_DATASET_0"],
)
def test_a_variable_the_backend_sets_for_the_job_is_refused_in_the_spec(
    name: str, tmp_path: Path
) -> None:
    from himl_tasks.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=f"{name} is set by the backend"):
        JobSpec(module="m", snapshot_root=tmp_path, environment_variables={name: "x"})
    # Other HIML_ names are the job's own.
    JobSpec(module="m", snapshot_root=tmp_path, environment_variables={"HIML_MODE": "x"})


def test_a_dataset_s_relative_local_folder_is_fixed_when_the_config_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = JobSpec(module="m", input_datasets=[DatasetConfig("scans", local_folder="data/scans")])

    monkeypatch.chdir("/")

    assert spec.input_datasets[0].local_folder == tmp_path / "data" / "scans"
    assert JobSpec.from_json(spec.to_json()) == spec


def test_a_duration_too_big_for_a_float_is_refused_as_invalid_input(tmp_path: Path) -> None:
    from himl_tasks.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="max_run_duration"):
        JobSpec(module="m", snapshot_root=tmp_path, max_run_duration=10**400)


def test_each_field_has_one_name_and_holds_its_normalised_value(tmp_path: Path) -> None:
    spec = JobSpec(
        entry_script="train.py",
        args=["--azureml", "--epochs", "--himl-local", "3"],
        snapshot_root=tmp_path,
        input_datasets=["scans"],
        max_run_duration="1h",
    )
    assert spec.args == ("--epochs", "3")  # the submission flags only say where to submit
    assert spec.input_datasets == (DatasetConfig("scans"),)
    assert spec.max_run_duration == 3600.0
    assert spec.entry_script == tmp_path / "train.py" and spec.snapshot_root == tmp_path
    # No second name reads the same value (the views of the old design are gone).
    for view in ("inputs", "outputs", "root", "script_path", "script_args", "max_run_seconds"):
        assert not hasattr(JobSpec, view), view
    assert dataclasses.replace(spec, display_name="again").args == spec.args


def test_a_spec_keeps_its_own_variables_and_tags_whatever_the_caller_does_later(
    tmp_path: Path,
) -> None:
    variables, tags = {"EPOCHS": "3"}, {"team": "a"}
    spec = JobSpec(entry_script="a.py", snapshot_root=tmp_path, environment_variables=variables,
                   tags=tags)  # fmt: skip

    variables["HIML_RUN_ID"] = "not checked"  # the caller's dicts change after the spec is made
    tags["team"] = "b"

    assert dict(spec.environment_variables) == {"EPOCHS": "3"}
    assert dict(spec.tags) == {"team": "a"}
    with pytest.raises(TypeError):
        spec.environment_variables["HIML_IN_JOB"] = "1"  # type: ignore[index]


def test_a_spec_is_hashable_and_survives_pickle_copy_and_json(tmp_path: Path) -> None:
    import copy
    import pickle

    spec = JobSpec(
        entry_script="a.py", snapshot_root=tmp_path, tags={"t": "v"},
        environment_variables={"A": "1", "KEY": SecretReference("MY_KEY")},
    )  # fmt: skip
    again = JobSpec.from_json(spec.to_json())

    assert hash(spec) == hash(again) and {spec: 1}[again] == 1
    for copied in (pickle.loads(pickle.dumps(spec)), copy.copy(spec), copy.deepcopy(spec)):
        assert copied == spec and hash(copied) == hash(spec)
    assert json.loads(spec.to_json())["tags"] == {"t": "v"}
    assert dataclasses.replace(spec, tags={"u": "w"}).tags == {"u": "w"}


def test_two_datasets_cannot_be_put_in_one_target_folder(tmp_path: Path) -> None:
    place = tmp_path / "data"
    with pytest.raises(InvalidInputError, match="target_folder"):
        JobSpec(
            entry_script="a.py", snapshot_root=tmp_path,
            input_datasets=[DatasetConfig("a", target_folder=place),
                            DatasetConfig("b", target_folder=place / "inner")],
        )  # fmt: skip
    with pytest.raises(InvalidInputError, match="target_folder"):
        JobSpec(
            entry_script="a.py", snapshot_root=tmp_path,
            input_datasets=[DatasetConfig("a", target_folder=place)],
            output_datasets=[DatasetConfig("b", target_folder=place)],
        )  # fmt: skip


@pytest.mark.parametrize("given", ["mnist", None, 5, b"mnist"])
def test_datasets_that_are_not_a_list_are_refused(tmp_path: Path, given: object) -> None:
    # One name is not a list of names: "mnist" was five datasets, "m", "n", "i", "s" and "t".
    for field in ("input_datasets", "output_datasets"):
        with pytest.raises(InvalidInputError, match=f"{field} must be a list"):
            JobSpec(entry_script="a.py", snapshot_root=tmp_path, **{field: given})  # type: ignore[arg-type]


@pytest.mark.parametrize("item", [42, None, Path("mnist")])
def test_a_list_item_that_is_neither_a_name_nor_a_config_is_named_in_the_error(
    tmp_path: Path, item: object
) -> None:
    # One rule for JobSpec and hi-ml's door (datasets.as_dataset_configs): the error names the
    # argument and says what it takes.
    with pytest.raises(InvalidInputError, match="input_datasets holds .*: give dataset names"):
        JobSpec(entry_script="a.py", snapshot_root=tmp_path, input_datasets=[item])  # type: ignore[list-item]


def test_a_name_is_a_dataset_in_the_default_datastore_and_a_config_keeps_its_own() -> None:
    given = ["mnist", DatasetConfig("cifar")]
    configs = as_dataset_configs(given, parameter="input_datasets", default_datastore="blobs")
    assert configs == (DatasetConfig("mnist", "blobs"), DatasetConfig("cifar"))


def test_json_may_leave_out_mappings_as_null_as_the_constructor_does(tmp_path: Path) -> None:
    text = json.dumps(
        {"entry_script": "a.py", "snapshot_root": str(tmp_path), "environment_variables": None,
         "tags": None}
    )  # fmt: skip
    spec = JobSpec.from_json(text)
    assert spec.environment_variables == {} and spec.tags == {}
