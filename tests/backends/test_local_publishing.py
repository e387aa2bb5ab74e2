"""Published pipelines and schedules on the local backend: Prefect deployments, for real.

The backend talks to the session's test Prefect server through its REST interface; these
tests read what it made there with Prefect's own client, and fire a deployment as a schedule
does: a flow run of it, run by a real process worker of the pool `himl-process`.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from himl_tasks.backends.local.backend import (
    PUBLISHED_PIPELINE_TAG,
    PUBLISHED_VERSION_TAG,
    LocalBackend,
)
from himl_tasks.backends.local.launcher import PACKAGE_PARENT
from himl_tasks.backends.local.pipeline_deployments import ENTRYPOINT, FLOW_NAME, WORK_POOL
from himl_tasks.backends.local.published_pipelines import PublishedPipelines
from himl_tasks.errors import ConfigurationError, InvalidInputError, PipelineNotFoundError
from himl_tasks.job_spec import JobSpec
from himl_tasks.pipeline_runs import PipelineSchedule
from himl_tasks.pipelines import PipelineSpec, PipelineStep
from himl_tasks.runs import RunStatus
from himl_tasks.snapshot import select_snapshot
from himl_tasks.testing.publishing_contract import unique
from tests.backends.conftest import write_script

DAILY = "15 4 * * *"


def pipeline(project: Path, name: str, line: str = "prep") -> PipelineSpec:
    """A pipeline of one step whose job prints `line`."""
    write_script(project, "prep.py", f"print({line!r}, flush=True)\n")
    job = JobSpec(entry_script="prep.py", snapshot_root=project)
    return PipelineSpec(name, [PipelineStep("prep", job)])


def deployment(endpoint: str) -> Any:
    """The deployment as Prefect's own client reads it."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(endpoint)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_published_pipeline_is_a_deployment_of_the_run_published_pipeline_flow(
    prefect_api_url: str, backend: LocalBackend, project: Path
) -> None:
    published = backend.publish_pipeline(pipeline(project, unique("chain")))

    made = deployment(published.endpoint)

    assert published.endpoint == f"{FLOW_NAME}/{made.name}"
    assert made.entrypoint == ENTRYPOINT and made.work_pool_name == WORK_POOL
    assert made.parameters == {
        "workspace_block": {"block_type_slug": "local-workspace", "root": str(backend.root)},
        "pipeline": published.name,
    }
    assert made.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PACKAGE_PARENT)}}
    ]
    assert (PACKAGE_PARENT / ENTRYPOINT.split(":")[0]).is_file()
    assert made.schedules == []


def test_a_schedule_is_its_deployments_schedule_named_by_its_slug(
    prefect_api_url: str, backend: LocalBackend, project: Path
) -> None:
    published = backend.publish_pipeline(pipeline(project, unique("chain")))
    name = unique("nightly")

    made = backend.schedule_pipeline(
        PipelineSchedule(name, published.name, DAILY, timezone="Europe/London", active=False)
    )

    [schedule] = deployment(published.endpoint).schedules
    assert (schedule.slug, str(schedule.id), schedule.active) == (name, made.id, False)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (DAILY, "Europe/London")
    assert schedule.parameters == {}  # each firing runs the deployment's: the latest version


def test_a_schedule_moved_to_another_pipeline_leaves_the_first(
    prefect_api_url: str, backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    first = backend.publish_pipeline(pipeline(project, unique("first")))
    second = backend.publish_pipeline(pipeline(project, unique("second")))
    name = unique("nightly")
    backend.schedule_pipeline(PipelineSchedule(name, first.name, DAILY))

    moved = backend.schedule_pipeline(PipelineSchedule(name, second.name, DAILY))

    assert [s for s in backend.pipeline_schedules() if s.name == name] == [moved]
    assert moved.pipeline == second.name
    assert deployment(first.endpoint).schedules == []
    assert [s.slug for s in deployment(second.endpoint).schedules] == [name]


def test_each_workspace_on_one_server_has_its_own_deployments_and_schedules(
    prefect_api_url: str, backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    other = LocalBackend(tmp_path / "other-workspace")
    chain = pipeline(project, unique("chain"))
    mine, theirs = backend.publish_pipeline(chain), other.publish_pipeline(chain)
    name = unique("nightly")
    backend.schedule_pipeline(PipelineSchedule(name, chain.name, DAILY))

    assert mine.endpoint != theirs.endpoint
    assert deployment(theirs.endpoint).parameters["workspace_block"]["root"] == str(other.root)
    assert name in [s.name for s in backend.pipeline_schedules()]
    assert other.pipeline_schedules() == []
    other.remove_pipeline_schedule(name)  # not theirs: nothing happens to mine
    assert name in [s.name for s in backend.pipeline_schedules()]


def test_a_firing_of_the_deployment_runs_the_latest_version_in_the_workspace(
    prefect_api_url: str, backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    chain = pipeline(project, unique("chain"), line="version one")
    backend.publish_pipeline(chain)
    published = backend.publish_pipeline(pipeline(project, chain.name, line="version two"))
    with get_client(sync_client=True) as client:
        made = deployment(published.endpoint)
        flow_run = client.create_flow_run_from_deployment(made.id)  # as a schedule fires
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HIML_"))}
    env |= {"PREFECT_API_URL": prefect_api_url, "PREFECT_HOME": str(tmp_path / "prefect")}

    worker = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL,
         "--type", "process", "--run-once", "--limit", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    output = worker.stdout + worker.stderr
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_completed(), output[-3000:]
    submitted = f"himl-published-{chain.name}-latest-{flow_run.id}"
    ref = backend.find_submission(submitted)
    assert ref is not None
    assert backend.get_state(ref).status is RunStatus.COMPLETED
    tags = backend.run_tags(ref)
    assert (tags[PUBLISHED_PIPELINE_TAG], tags[PUBLISHED_VERSION_TAG]) == (chain.name, "2")
    [step] = backend.child_runs(ref)
    assert list(backend.iter_logs(step)) == ["version two"]


def test_a_published_version_runs_without_its_project(backend: LocalBackend, project: Path,
                                                      prefect_api_url: str) -> None:  # fmt: skip
    chain = pipeline(project, unique("chain"), line="kept")
    backend.publish_pipeline(chain)
    shutil.rmtree(project)

    ref = backend.submit_published_pipeline(chain.name)

    assert backend.wait(ref, timeout=120).status is RunStatus.COMPLETED
    [step] = backend.child_runs(ref)
    assert list(backend.iter_logs(step)) == ["kept"]


def test_a_version_is_the_content_not_where_the_project_is(
    prefect_api_url: str, backend: LocalBackend, project: Path, tmp_path: Path
) -> None:
    chain = pipeline(project, unique("chain"))
    first = backend.publish_pipeline(chain)
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    same = PipelineSpec(
        chain.name, [PipelineStep("prep", JobSpec(entry_script="prep.py", snapshot_root=moved))]
    )
    assert backend.publish_pipeline(same) == first

    (moved / "helper.py").write_text("VALUE = 1\n")  # the script is the same; the code is not
    assert backend.publish_pipeline(same).version == 2
    assert [p.version for p in backend.published_pipelines(chain.name)] == [1, 2]


def test_without_a_prefect_api_nothing_is_published(
    backend: LocalBackend,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = pipeline(project, unique("chain"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-profiles"))
    with pytest.raises(ConfigurationError, match=r"no Prefect API is configured.*prefect server"):
        backend.publish_pipeline(chain)

    down = f"http://127.0.0.1:{_free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", down)
    with pytest.raises(ConfigurationError) as error:
        backend.publish_pipeline(chain)

    assert str(error.value).startswith(
        f"cannot publish pipeline '{chain.name}': the Prefect API at {down} (from "
        "PREFECT_API_URL) did not answer (ConnectError: "
    )
    assert "start it (`prefect server start`)" in str(error.value)
    assert backend.published_pipelines() == []
    assert not (backend.root / "published").exists()
    with pytest.raises(ConfigurationError, match="did not answer"):
        backend.pipeline_schedules()
    with pytest.raises(ConfigurationError, match="did not answer"):
        backend.remove_pipeline_schedule("nightly")


def test_a_published_pipeline_is_submitted_with_no_prefect_api(
    prefect_api_url: str,
    backend: LocalBackend,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = pipeline(project, unique("chain"))
    backend.publish_pipeline(chain)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{_free_port()}/api")

    ref = backend.submit_published_pipeline(chain.name, version=1)

    assert backend.wait(ref, timeout=120).succeeded
    with pytest.raises(PipelineNotFoundError, match=f"published pipelines: '{chain.name}'"):
        backend.schedule_pipeline(PipelineSchedule("nightly", unique("unknown"), DAILY))


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_a_version_that_is_no_version_number_is_refused(
    backend: LocalBackend, version: object
) -> None:
    with pytest.raises(InvalidInputError, match="version must be"):
        backend.submit_published_pipeline("chain", version=version)  # type: ignore[arg-type]
    assert backend.list_runs() == []


def test_what_is_no_pipeline_or_schedule_is_refused(backend: LocalBackend) -> None:
    with pytest.raises(InvalidInputError, match="a pipeline is a PipelineSpec"):
        backend.publish_pipeline("chain")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="a schedule is a PipelineSchedule"):
        backend.schedule_pipeline("nightly")  # type: ignore[arg-type]
    # A name is looked up among the names published, never used as a path.
    assert backend.published_pipelines("../../etc") == []
    with pytest.raises(PipelineNotFoundError, match="published pipelines: none"):
        backend.submit_published_pipeline(f"../{uuid.uuid4().hex}")


def test_publishers_racing_for_a_number_each_get_a_whole_version_of_their_own(
    backend: LocalBackend, tmp_path: Path
) -> None:
    store = PublishedPipelines(backend.root)
    pipelines = []
    for number in range(6):
        folder = tmp_path / f"project{number}"
        pipelines.append(pipeline(folder, "raced", line=f"publisher {number}"))
    snapshots = [{"prep": select_snapshot(p.steps[0].job.snapshot_root)} for p in pipelines]
    start = threading.Barrier(len(pipelines))

    def publish(index: int) -> int:
        start.wait()
        made = store.publish(pipelines[index], snapshots[index], description="", endpoint="e")
        return made.version

    with concurrent.futures.ThreadPoolExecutor(len(pipelines)) as pool:
        versions = list(pool.map(publish, range(len(pipelines))))

    assert sorted(versions) == list(range(1, len(pipelines) + 1))
    for index, version in enumerate(versions):
        kept = store.version("raced", version).pipeline()
        script = kept.steps[0].job.entry_script
        assert (
            script is not None and script.read_text() == f"print('publisher {index}', flush=True)\n"
        )
    left = sorted(p.name for p in (backend.root / "published" / "raced").iterdir())
    assert left == [str(n) for n in sorted(range(1, len(pipelines) + 1), key=str)]
