"""A JobSpec as a flow's parameter: a deployment hands it over as JSON, a script as an object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow
from prefect.utilities.callables import parameter_schema

from himl_tasks import DatasetConfig, JobSpec


@flow
def echo_spec(spec: JobSpec) -> JobSpec:
    return spec


def test_a_flow_takes_a_spec_as_an_object_or_as_its_fields_in_json(
    prefect_api: None, tmp_path: Path
) -> None:
    spec = JobSpec(
        entry_script="train.py",
        snapshot_root=tmp_path,
        input_datasets=["scans"],
        max_run_duration="1h",
    )
    assert echo_spec(spec) == spec
    typed = {
        "entry_script": "train.py",
        "snapshot_root": str(tmp_path),
        "input_datasets": ["scans"],
        "max_run_duration": "1h",
    }
    assert echo_spec(typed) == spec  # type: ignore[arg-type]
    assert echo_spec(json.loads(spec.to_json())) == spec  # type: ignore[arg-type]
    assert echo_spec(spec).input_datasets == (DatasetConfig("scans"),)
    assert parameter_schema(echo_spec).properties["spec"]["type"] == "object"


def test_a_flow_refuses_fields_that_make_no_spec(prefect_api: None) -> None:
    with pytest.raises(Exception, match="exactly one of entry_script and module"):
        echo_spec({"args": ["--epochs", "3"]})  # type: ignore[arg-type]
