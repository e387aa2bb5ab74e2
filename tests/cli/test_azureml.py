"""`himl` against the AzureML backend, through the service stand-in at its seam
(tests/backends/azureml_service.py: runs step through AzureML's statuses, write their driver log
and files into the artifact store on Azurite, and are listed as `Experiment.get_runs` lists)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from himl_tasks.backends.azureml_v1 import AzureMLV1Backend
from himl_tasks.job_spec import JobSpec
from himl_tasks.runs import RunStatus
from tests.backends.azureml_service import FakeAzureMLService, Outcome
from tests.cli.conftest import himl


@pytest.fixture
def quick_aml(aml: AzureMLV1Backend) -> AzureMLV1Backend:
    aml.max_poll_seconds = 0.05  # type: ignore[misc]  # the stand-in answers at once
    return aml


def test_status_logs_results_metrics(
    quick_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec, tmp_path: Path
) -> None:
    aml = quick_aml
    aml_service.next_outcome = Outcome(
        log_lines=("epoch 0", "epoch 1"),
        files={"outputs/model.txt": b"weights"},
        metrics={"loss": [1.0, 0.5, 0.25]},
    )
    good = aml.submit(dataclasses.replace(spec, display_name="good", tags={"lr": "0.1"}))
    aml_service.next_outcome = Outcome(statuses=("Queued", "Running", "Failed"))
    bad = aml.submit(dataclasses.replace(spec, experiment="other"))
    aml.wait(good, poll=0)
    aml.wait(bad, poll=0)

    code, out, _ = himl(aml, "status", "all", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(row["run_id"], row["status"]) for row in rows] == [
        (good.run_id, "Completed"),
        (bad.run_id, "Failed"),
    ]
    assert rows[0]["portal_url"] == good.portal_url and rows[0]["display_name"] == "good"
    code, out, _ = himl(aml, "status", "lr=0.1", "--json")
    assert [row["run_id"] for row in json.loads(out)] == [good.run_id]

    code, out, _ = himl(aml, "logs", good.run_id)
    assert code == 0 and out.splitlines() == ["epoch 0", "epoch 1"]

    code, out, _ = himl(aml, "results", "good", "--dest", str(tmp_path / "got"))
    assert code == 0 and (tmp_path / "got/outputs/model.txt").read_bytes() == b"weights"

    code, out, _ = himl(aml, "metrics", good.recovery_id, "--json")
    assert json.loads(out)[good.recovery_id]["loss"] == [[0, 1.0], [1, 0.5], [2, 0.25]]

    code, _, err = himl(aml, "status", "no_such_run")
    assert code == 1
    assert "no run matches 'no_such_run' in the workspace azureml_v1:" in err
    assert "ws-himl" in err


def test_logs_follow_and_cancel(
    quick_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec
) -> None:
    aml = quick_aml
    lines = tuple(f"step {i}" for i in range(4))
    aml_service.next_outcome = Outcome(
        statuses=("Queued", "Running", "Running", "Running", "Running", "Completed"),
        log_lines=lines,
    )
    followed = aml.submit(spec)
    code, out, _ = himl(aml, "logs", followed.run_id, "-f", "--timeout", "60")
    assert code == 0 and out.splitlines() == list(lines)
    assert aml.get_state(followed).succeeded

    aml_service.next_outcome = Outcome(statuses=("Queued", "Running"))
    running = [aml.submit(dataclasses.replace(spec, tags={"batch": "b"})) for _ in range(2)]
    code, out, _ = himl(aml, "cancel", "batch=b", "--yes")
    assert code == 0
    assert all(aml.get_state(ref).status is RunStatus.CANCELED for ref in running)


def test_resubmit_says_azureml_keeps_no_job_spec(
    quick_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, spec: JobSpec
) -> None:
    ref = quick_aml.submit(spec)
    quick_aml.wait(ref, poll=0)

    code, _, err = himl(quick_aml, "resubmit", ref.run_id)

    assert code == 2
    assert f"AzureML does not keep the job spec of run '{ref}'" in err
    assert f"resume_from='{ref.recovery_id}'" in err
    assert len(aml_service.runs) == 1


def test_datasets_and_datastores(
    quick_aml: AzureMLV1Backend, aml_service: FakeAzureMLService, tmp_path: Path
) -> None:
    store = quick_aml.datastore()
    (tmp_path / "a.csv").write_text("1\n")
    store.upload_folder(tmp_path, "digits/v1")
    quick_aml.register_dataset("digits", "", "digits/v1", created_by_run="prep_1_abc")

    code, out, _ = himl(quick_aml, "datasets", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "name": "digits",
            "version": 1,
            "datastore": store.name,
            "path": "digits/v1",
            "created_by_run": "prep_1_abc",
        }
    ]
    code, out, _ = himl(quick_aml, "datastores", "--json")
    assert code == 0 and store.name in [row["name"] for row in json.loads(out)]
    assert "<redacted>" in out and aml_service.azurite.account_key not in out


def test_one_run_named_by_its_id_is_looked_up_alone_and_metrics_list_once(
    quick_aml: AzureMLV1Backend,
    aml_service: FakeAzureMLService,
    spec: JobSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `himl logs ID` listed the whole workspace (every experiment's runs and each run's details,
    # a service call per run) to find the run get_run_ref finds in one; `himl metrics` listed it
    # twice (once more for the children).
    aml_service.next_outcome = Outcome(
        log_lines=("epoch 0",), files={"outputs/model.txt": b"weights"}, metrics={"loss": [1.0]}
    )
    ref = quick_aml.submit(dataclasses.replace(spec, display_name="good"))
    quick_aml.wait(ref, poll=0)
    listings: list[str | None] = []
    list_runs = aml_service.list_runs

    def counted(experiment: str | None) -> list[tuple[object, str | None]]:
        listings.append(experiment)
        return list_runs(experiment)

    monkeypatch.setattr(aml_service, "list_runs", counted)
    for name in (ref.run_id, ref.recovery_id):
        code, out, _ = himl(quick_aml, "logs", name)
        assert code == 0 and out.splitlines() == ["epoch 0"]
    code, _, err = himl(quick_aml, "results", ref.run_id, "--dest", str(tmp_path / "got"))
    assert code == 0 and listings == [], err
    code, out, _ = himl(quick_aml, "logs", "good")  # a name: matched against the listing
    assert code == 0 and listings == [None]
    code, out, _ = himl(quick_aml, "metrics", "good", "--json")
    assert code == 0 and list(json.loads(out)) == [ref.recovery_id] and listings == [None, None]


@pytest.mark.parametrize(
    ("args", "sdk"), [([], "v2"), (["--sdk", "v1"], "v1"), (["--sdk", "v2"], "v2")]
)
def test_an_azureml_config_json_is_reached_through_sdk_v2_unless_v1_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], sdk: str
) -> None:
    from typer.testing import CliRunner

    from himl_tasks.backends.local.backend import LocalBackend
    from himl_tasks.cli.app import app
    from tests.himl.workspace_places import seam_to, write_config_json

    seam = seam_to(LocalBackend(tmp_path / "behind-the-seam"), monkeypatch)
    config = write_config_json(tmp_path)
    result = CliRunner().invoke(app, ["--workspace", str(config), *args, "status", "all"])
    assert "no run matches 'all'" in result.output  # asked of the backend behind the seam
    assert seam.calls == [{"aml_workspace": None, "config": config}] and seam.sdks == [sdk]


def test_an_sdk_the_command_does_not_know_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from himl_tasks.cli.app import app

    result = CliRunner().invoke(app, ["--sdk", "v3", "status", "all"])
    assert result.exit_code == 2 and "'v3' is not one of 'v1', 'v2'" in result.output
