"""Submitting to AzureML through SDK v2: the command job a JobSpec becomes, as the service gets it.

The backend talks to the v2 service stand-in (azureml_v2_service.py), which keeps each job
entity it was sent (`submitted`) with the files its code snapshot took.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.azureml_v2 import AzureMLV2Backend
from himl_tasks.backends.azureml_v2.submission import job_name_for
from himl_tasks.datasets import DatasetConfig
from himl_tasks.errors import ConfigurationError, InvalidInputError
from himl_tasks.job_spec import JobSpec, Priority
from himl_tasks.runs import RunStatus
from himl_tasks.secret_reference import SecretReference
from himl_tasks.testing.azurite import Azurite
from tests.backends.azureml_v2_service import FakeAzureMLV2Service
from tests.backends.conftest import azureml_job, write_script


def submitted(service: FakeAzureMLV2Service) -> Any:
    """The last job entity the service was sent."""
    return service.submitted[-1][0]


def test_the_command_job_holds_the_whole_job(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    project: Path,
    azurite: Azurite,
) -> None:
    spec = azureml_job(
        project,
        "print('hi')\n",
        name="train.py",
        args=["--epochs", "2", "a b"],
        num_nodes=2,
        processes_per_node=4,
        docker_shm_size="16g",
        max_run_duration="1h",
        environment_variables={"MY_VAR": "1"},
        tags={"team": "vision"},
        experiment="exp_v2",
        display_name="the run",
        resume_from="exp_v2:earlier_job",
    )

    ref = aml_v2.submit(spec, submission_id="submission-1")

    job = submitted(aml_v2_service)
    assert (ref.experiment, ref.run_id) == ("exp_v2", job_name_for("submission-1"))
    assert job.name == ref.run_id and job.experiment_name == "exp_v2"
    assert job.display_name == "the run"
    assert job.command == "python train.py --epochs 2 'a b'"
    assert Path(job.code) == project
    assert job.compute == "cpu-cluster"
    assert (job.resources.instance_count, job.resources.shm_size) == (2, "16g")
    assert job.distribution.type == "pytorch"
    assert job.distribution.process_count_per_instance == 4
    assert job.limits.timeout == 3600
    assert job.environment_variables == {
        "MY_VAR": "1",
        "HIML_IN_JOB": "himl_tasks.backends.azureml_v2.in_job",
        "HIML_RESUME_FROM": "exp_v2:earlier_job",
    }
    assert job.tags["team"] == "vision" and job.tags["priority"] == "dedicated"
    assert job.tags["resume_from"] == "exp_v2:earlier_job"
    assert job.tags["himl_submission_id"] == "submission-1"
    assert "himl_low_priority" not in job.tags and job.queue_settings is None
    assert ref.portal_url.startswith("https://ml.azure.com/runs/" + ref.run_id)
    sent = f"{job.environment_variables} {job.tags} {job.command}"
    assert azurite.account_key not in sent  # the datastores' secrets never travel with a job


def test_a_module_runs_with_python_dash_m(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    write_script(project, "pkg/__init__.py", "")
    write_script(project, "pkg/train.py", "print('hi')\n")
    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.11\n")
    spec = JobSpec(module="pkg.train", args=["--x"], snapshot_root=project, compute="cpu-cluster")

    aml_v2.submit(spec)

    assert submitted(aml_v2_service).command == "python -m pkg.train --x"


def test_low_priority_is_spot_on_serverless_or_a_low_priority_cluster_recorded_either_way(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(project, "print('hi')\n", priority=Priority.LOW_PRIORITY)

    serverless = aml_v2.submit(dataclasses.replace(spec, compute="serverless"))
    on_serverless = submitted(aml_v2_service)
    aml_v2.submit(dataclasses.replace(spec, compute="spot-cluster"))
    on_cluster = submitted(aml_v2_service)

    assert on_serverless.compute is None
    assert on_serverless.queue_settings.job_tier == "Spot"
    assert on_serverless.tags["himl_low_priority"] == "spot"
    assert on_serverless.tags["priority"] == "low_priority"
    assert on_cluster.compute == "spot-cluster" and on_cluster.queue_settings is None
    assert on_cluster.tags["himl_low_priority"] == "cluster:spot-cluster"
    # Serverless compute is made on demand: the service reports Provisioning on the way.
    seen = {aml_v2.get_state(serverless).status for _ in range(3)}
    assert RunStatus.PREPARING in seen


def test_a_low_priority_job_on_a_dedicated_cluster_is_refused_before_anything_is_sent(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    project: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("a")
    aml_v2.datastore().upload_folder(tmp_path, "folder_only")  # would become a data asset
    spec = azureml_job(
        project,
        "print('hi')\n",
        priority=Priority.LOW_PRIORITY,
        input_datasets=[DatasetConfig("folder_only")],
    )

    with pytest.raises(InvalidInputError, match="'cpu-cluster' is dedicated.*serverless"):
        aml_v2.submit(spec)

    assert aml_v2_service.create_requests == 0
    assert aml_v2_service.environments == {} and aml_v2_service.data_assets == {}


def test_an_unchanged_environment_is_reused_and_a_changed_one_registered(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(project, "print('hi')\n")

    aml_v2.submit(spec)
    first = submitted(aml_v2_service).environment
    aml_v2.submit(spec)
    again = submitted(aml_v2_service).environment
    write_script(project, "environment.yml", "name: job\ndependencies:\n  - python=3.12\n")
    aml_v2.submit(spec)
    changed = submitted(aml_v2_service).environment
    aml_v2.submit(dataclasses.replace(spec, pip_extra_index_url="https://pypi.example/simple"))
    with_index = aml_v2_service.environments[submitted(aml_v2_service).environment.split(":")[1]]

    assert first == again != changed
    assert first.startswith("azureml:HIML-") and first.endswith(":1")
    assert len(aml_v2_service.environments) == 3
    assert all(len(versions) == 1 for versions in aml_v2_service.environments.values())
    (registered,) = with_index
    assert {"pip": ["--extra-index-url https://pypi.example/simple"]} in registered.conda_file[
        "dependencies"
    ]


def test_a_registered_environment_is_used_by_name_and_version(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    from himl_tasks.backends.azureml_v2 import sdk

    for version in ("1", "2"):
        with sdk.quiet():
            aml_v2_service.create_environment(
                sdk.entities().Environment(name="team-env", version=version, image="img:1")
            )
    write_script(project, "job.py", "print('hi')\n")
    spec = JobSpec(
        entry_script="job.py",
        snapshot_root=project,
        compute="cpu-cluster",
        environment_name="team-env",
    )

    aml_v2.submit(spec)
    latest = submitted(aml_v2_service).environment
    aml_v2.submit(dataclasses.replace(spec, environment_name="team-env:1"))
    pinned = submitted(aml_v2_service).environment

    assert (latest, pinned) == ("azureml:team-env:2", "azureml:team-env:1")
    with pytest.raises(ConfigurationError, match="no environment 'other-env'"):
        aml_v2.submit(dataclasses.replace(spec, environment_name="other-env"))


def test_the_snapshot_follows_the_ignore_rules_and_the_users_amlignore_comes_back(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(project, "print('hi')\n", ignored_folders=["data"])
    write_script(project, "data/big.bin", "x")
    write_script(project, "notes/kept.txt", "x")
    write_script(project, "scratch.tmp", "x")
    write_script(project, ".amlignore", "*.tmp\n")
    write_script(project, ".azureml/config.json", "{}")

    aml_v2.submit(spec)

    snapshot = aml_v2_service.submitted[-1][1]
    assert {"job.py", "environment.yml", "notes/kept.txt"} <= set(snapshot)
    assert not {"data/big.bin", "scratch.tmp", ".azureml/config.json"} & set(snapshot)
    assert (project / ".amlignore").read_text() == "*.tmp\n"


def test_inputs_are_data_asset_versions_downloaded_or_mounted_at_their_target(
    aml_v2: AzureMLV2Backend,
    aml_v2_service: FakeAzureMLV2Service,
    project: Path,
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.csv").write_text("1,2\n")
    aml_v2.datastore().upload_folder(source, "images")  # a folder, not yet a data asset
    aml_v2.datastore().upload_folder(source, "labels/v1")
    aml_v2.register_dataset("labels", "", "labels/v1")
    aml_v2.register_dataset("labels", "", "labels/v1")
    spec = azureml_job(
        project,
        "print('hi')\n",
        input_datasets=[
            DatasetConfig("images"),
            DatasetConfig("labels", use_mounting=True, target_folder=Path("/mnt/labels")),
        ],
    )

    aml_v2.submit(spec)

    job = submitted(aml_v2_service)
    first, second = job.inputs["INPUT_0"], job.inputs["INPUT_1"]
    assert (first.path, first.mode) == ("azureml:images:1", "download")
    assert (second.path, second.mode) == ("azureml:labels:2", "ro_mount")  # the latest
    assert second.path_on_compute == "/mnt/labels"
    (asset,) = aml_v2_service.data_assets["images"]  # created from the folder, as hi-ml does
    assert asset.path == "azureml://datastores/workspaceblobstore/paths/images/"


def test_outputs_go_under_their_name_and_the_job_name(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(
        project,
        "print('hi')\n",
        output_datasets=[DatasetConfig("features"), DatasetConfig("report", use_mounting=False)],
    )

    ref = aml_v2.submit(spec)

    job = submitted(aml_v2_service)
    features, report = job.outputs["OUTPUT_0"], job.outputs["OUTPUT_1"]
    assert features.path == "azureml://datastores/workspaceblobstore/paths/features/${{name}}/"
    assert (features.name, features.mode) == ("features", "rw_mount")
    assert (report.name, report.mode) == ("report", "upload")
    assert job.tags["himl_outputs"] == "features,report"
    assert aml_v2.wait(ref, poll=0).succeeded
    (made,) = aml_v2_service.data_assets["features"]
    assert made.path == f"azureml://datastores/workspaceblobstore/paths/features/{ref.run_id}/"


def test_a_submission_the_service_already_has_returns_that_job(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    # Two submitters of one submission id at the same moment: both pass the lookup, the
    # service refuses the second job of that name, and the second submitter finds the first.
    spec = azureml_job(project, "print('hi')\n")
    first = aml_v2.submit(spec, submission_id="race")
    plan = aml_v2.plan(spec)

    second = aml_v2._submit_plan(plan, "race")

    assert second == first
    assert aml_v2_service.create_requests == 2 and len(aml_v2_service.jobs) == 1


def test_bad_jobs_fail_before_anything_is_sent(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(project, "print('hi')\n")
    wheel = project / "pkg.whl"
    wheel.write_bytes(b"wheel")
    bad = {
        "no compute": (dataclasses.replace(spec, compute=""), InvalidInputError),
        "a binding": (dataclasses.replace(spec, args=("--x", "${{inputs.x}}")), InvalidInputError),
        "a secret": (
            dataclasses.replace(spec, environment_variables={"KEY": SecretReference("KEY")}),
            InvalidInputError,
        ),
        "a private wheel": (
            dataclasses.replace(spec, private_pip_wheel_path=wheel),
            InvalidInputError,
        ),
        "no conda file": (
            dataclasses.replace(spec, conda_environment_file=project / "missing.yml"),
            Exception,
        ),
    }
    for name, (job, error) in bad.items():
        with pytest.raises(error):
            aml_v2.submit(job)
        assert aml_v2_service.create_requests == 0, name
    assert aml_v2_service.environments == {} and aml_v2_service.data_assets == {}


def test_a_job_the_service_made_keeps_its_spec_when_the_answer_is_lost(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    # The service made the job, but the connection broke before its answer came back: the
    # job runs, so the spec kept for `himl resubmit` must stay (before, it was deleted as if
    # the service had refused the job).
    spec = azureml_job(project, "print('hi')\n")
    aml_v2_service.lose_next_create_answer = True

    with pytest.raises(Exception, match="Connection reset"):
        aml_v2.submit(spec)

    (made,) = aml_v2_service.jobs.values()
    ref = aml_v2.get_run_ref(made.name)
    assert aml_v2.submitted_spec(ref) == spec


def test_a_lost_answer_to_an_identified_submission_returns_the_job_the_service_made(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    spec = azureml_job(project, "print('hi')\n")
    aml_v2_service.lose_next_create_answer = True

    ref = aml_v2.submit(spec, submission_id="lost-answer")

    assert ref.run_id == job_name_for("lost-answer") and len(aml_v2_service.jobs) == 1
    assert aml_v2.submitted_spec(ref) == spec
    assert aml_v2.submit(spec, submission_id="lost-answer") == ref
    assert aml_v2_service.create_requests == 1


def test_a_job_the_service_refused_leaves_no_spec_behind(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    from azure.core.exceptions import HttpResponseError

    spec = azureml_job(project, "print('hi')\n")
    aml_v2_service.fail_next_create = HttpResponseError(message="(UserError) quota exceeded")

    with pytest.raises(HttpResponseError):
        aml_v2.submit(spec, submission_id="refused")

    assert aml_v2_service.jobs == {}
    assert aml_v2.datastore("workspaceartifactstore").list("ExperimentRun/") == []


def test_the_backends_own_tags_win_over_the_specs(
    aml_v2: AzureMLV2Backend, aml_v2_service: FakeAzureMLV2Service, project: Path
) -> None:
    # A spec's tags (copied from another run's, say) must not rename the job's outputs
    # (run_outputs reads them from `himl_outputs`) nor hide its submission or Spot tier.
    spec = azureml_job(
        project,
        "print('hi')\n",
        priority=Priority.LOW_PRIORITY,
        output_datasets=[DatasetConfig("features")],
        tags={
            "himl_outputs": "other",
            "himl_submission_id": "someone-else",
            "himl_low_priority": "",
            "team": "vision",
        },
    )

    aml_v2.submit(dataclasses.replace(spec, compute="serverless"), submission_id="mine")

    tags = submitted(aml_v2_service).tags
    assert tags["himl_outputs"] == "features" and tags["himl_submission_id"] == "mine"
    assert tags["himl_low_priority"] == "spot" and tags["team"] == "vision"
