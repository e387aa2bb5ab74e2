"""A PipelineSpec as a flow's parameter: from a deployment as JSON, from a script as an object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import flow
from prefect.utilities.callables import parameter_schema

from himl_tasks import JobSpec, PipelineSpec, PipelineStep


@flow
def echo_pipeline(pipeline: PipelineSpec) -> PipelineSpec:
    return pipeline


def test_a_flow_takes_a_pipeline_as_an_object_or_as_its_fields_in_json(
    prefect_api: None, tmp_path: Path
) -> None:
    pipeline = PipelineSpec(
        "prep-then-train",
        [
            PipelineStep(
                "prep",
                JobSpec(
                    entry_script="prep.py",
                    snapshot_root=tmp_path,
                    input_datasets=["raw"],
                    output_datasets=["features"],
                ),
            ),
            PipelineStep(
                "train",
                JobSpec(
                    entry_script="train.py", snapshot_root=tmp_path, input_datasets=["features"]
                ),
                allow_reuse=False,
            ),
        ],
        existing_datasets=["raw"],
    )
    assert echo_pipeline(pipeline) == pipeline
    assert echo_pipeline(json.loads(pipeline.to_json())) == pipeline
    typed = {
        "name": "prep-then-train",
        "existing_datasets": ["raw"],
        "steps": [
            {
                "name": "prep",
                "job": {"entry_script": "prep.py", "snapshot_root": str(tmp_path),
                        "input_datasets": ["raw"], "output_datasets": ["features"]},
            },
            {
                "name": "train",
                "job": {"entry_script": "train.py", "snapshot_root": str(tmp_path),
                        "input_datasets": ["features"]},
                "allow_reuse": False,
            },
        ],
    }  # fmt: skip
    assert echo_pipeline(typed) == pipeline  # type: ignore[call-overload]
    assert parameter_schema(echo_pipeline).properties["pipeline"]["type"] == "object"


def test_a_flow_refuses_fields_that_make_no_pipeline(prefect_api: None) -> None:
    with pytest.raises(Exception, match="needs at least one step"):
        echo_pipeline({"name": "empty", "steps": []})  # type: ignore[call-overload]
    with pytest.raises(Exception, match="not the fields of a PipelineSpec: KeyError"):
        echo_pipeline({"name": "nameless", "steps": [{"job": {}}]})  # type: ignore[call-overload]
