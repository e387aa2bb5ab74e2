"""How a job finds its backend's in-job half: by the variable the backend set, never an import."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from himl_tasks import job_variables
from himl_tasks.errors import ConfigurationError
from himl_tasks.runtime import RUN_CONTEXT, current_run, get_run_info, log_metric
from himl_tasks.runtime.in_job_platform import in_job_platform, load_in_job_platform
from tests.runtime.conftest import FAKE_IN_JOB, FakeInJob, FakeRun


def test_the_runtime_imports_no_backend() -> None:
    code = (
        "import sys, himl_tasks.runtime, himl_tasks.runtime.in_job_platform; "
        "print(sorted(m for m in sys.modules if m.startswith('himl_tasks.backends') "
        "or m.split('.')[0] in ('azureml', 'prefect', 'torch')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_in_job_half_named_by_the_variable_is_used(fake_in_job: FakeInJob) -> None:
    info = get_run_info(input_datasets=["ignored inside a run"])
    log_metric("loss", 0.5, step=2)

    assert info.input_datasets == [Path("/in/0")] and info.output_folder == Path("/out")
    # info.run is hi-ml's run, RUN_CONTEXT, as the door's; the backend's own is current_run().
    assert current_run() is fake_in_job.run and info.run is RUN_CONTEXT
    assert fake_in_job.run.logged == [({"loss": 0.5}, 2)]


def test_the_variable_wins_over_azureml_s_own(
    fake_in_job: FakeInJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_RUN_ID", "run_1")  # submitted by himl-tasks to some backend
    assert isinstance(current_run(), FakeRun)


def test_an_azureml_run_not_submitted_by_himl_tasks_gets_the_v1_in_job_half(
    monkeypatch: pytest.MonkeyPatch, clean_job_environment: None
) -> None:
    assert in_job_platform() is None  # a plain `python script.py`
    monkeypatch.setenv("AZUREML_RUN_ID", "run_1")
    assert in_job_platform() is importlib.import_module(job_variables.AZUREML_V1_IN_JOB)


@pytest.mark.parametrize("name", [job_variables.LOCAL_IN_JOB, job_variables.AZUREML_V1_IN_JOB])
def test_every_backend_s_in_job_half_provides_the_protocol(name: str) -> None:
    module = load_in_job_platform(name)
    assert module is importlib.import_module(name)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("this", "only himl_tasks.backends.<backend>.in_job is accepted"),  # the Zen of Python
        ("himl_tasks.backends.local.supervisor", "only himl_tasks.backends"),
        ("himl_tasks.backends..in_job", "only himl_tasks.backends"),
        ("himl_tasks.backends.local.in_job\nimport os", "only himl_tasks.backends"),
        (" himl_tasks.backends.local.in_job", "only himl_tasks.backends"),
        ("himl_tasks.backends.azureml_v9.in_job", "there is no such module"),
        (FAKE_IN_JOB, "it has no run_info, fetch_resumed_checkpoint"),
    ],
)
def test_an_unknown_or_unsafe_in_job_module_is_one_clear_error(
    value: str, why: str, monkeypatch: pytest.MonkeyPatch, clean_job_environment: None
) -> None:
    lacking = types.ModuleType(FAKE_IN_JOB)
    lacking.run_context = FakeRun  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE_IN_JOB, lacking)
    monkeypatch.delitem(sys.modules, "this", raising=False)
    monkeypatch.setenv("HIML_IN_JOB", value)

    for call in (current_run, get_run_info, lambda: log_metric("loss", 1.0)):
        with pytest.raises(ConfigurationError) as raised:
            call()
        message = str(raised.value)
        assert message.startswith(f"the environment variable HIML_IN_JOB={value!r} does not")
        assert why in message and "Unset it to run the script outside any run" in message
    assert "this" not in sys.modules  # refused before anything was imported


def test_a_library_missing_inside_an_in_job_half_is_not_called_a_bad_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'azureml'", name="azureml")

    monkeypatch.setattr(importlib, "import_module", import_module)
    with pytest.raises(ModuleNotFoundError, match="azureml"):
        load_in_job_platform(job_variables.AZUREML_V1_IN_JOB)


def test_a_very_long_value_is_shortened_in_the_error(
    monkeypatch: pytest.MonkeyPatch, clean_job_environment: None
) -> None:
    monkeypatch.setenv("HIML_IN_JOB", "x" * 10_000)
    with pytest.raises(ConfigurationError) as raised:
        current_run()
    assert len(str(raised.value)) < 600


def test_an_empty_variable_means_outside_any_run(
    monkeypatch: pytest.MonkeyPatch, clean_job_environment: None
) -> None:
    monkeypatch.setenv("HIML_IN_JOB", "")
    assert current_run() is None and os.environ["HIML_IN_JOB"] == ""
