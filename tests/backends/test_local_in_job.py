"""The local backend's in-job half: the run and its folders from the supervisor's variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from himl_tasks import job_variables
from himl_tasks.backends.local.in_job import LocalRunContext
from himl_tasks.errors import ConfigurationError
from himl_tasks.runtime import RUN_CONTEXT, current_run, get_run_info


def test_a_local_runs_variables_give_the_local_in_job_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("HIML_", "AZUREML_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HIML_IN_JOB", job_variables.LOCAL_IN_JOB)
    for name, value in {
        "HIML_WORKSPACE": str(tmp_path / "ws"), "HIML_RUN_ID": "exp_1", "HIML_EXPERIMENT": "exp",
        "HIML_ATTEMPT": "3", "HIML_OUTPUT_FOLDER": str(tmp_path / "outputs"),
        "HIML_LOGS_FOLDER": str(tmp_path / "logs"), "HIML_INPUT_DATASET_COUNT": "2",
        "HIML_INPUT_DATASET_1": str(tmp_path / "in1"), "HIML_OUTPUT_DATASET_COUNT": "1",
        "HIML_OUTPUT_DATASET_0": str(tmp_path / "out0"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    info = get_run_info()

    assert current_run() == LocalRunContext(tmp_path / "ws", "exp_1", "exp", 3, tmp_path / "logs")
    assert info.run is RUN_CONTEXT and info.run.id == "exp_1"  # hi-ml's run, as the door's
    assert info.input_datasets == [None, tmp_path / "in1"]  # input 0 was not given to the job
    assert info.output_datasets == [tmp_path / "out0"]
    assert (info.output_folder, info.logs_folder) == (tmp_path / "outputs", tmp_path / "logs")
    assert not info.is_running_in_azure_ml

    monkeypatch.delenv("HIML_RUN_ID")
    with pytest.raises(ConfigurationError, match="HIML_RUN_ID is not set"):
        current_run()
