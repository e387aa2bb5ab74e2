"""The environment variables through which a backend tells a job where it runs.

Backends set them; `himl_tasks.runtime` reads them. Dataset folders are numbered in the order of
the job spec's `input_datasets` / `output_datasets`, as hi-ml numbers them.
"""

from __future__ import annotations

WORKSPACE = "HIML_WORKSPACE"
RUN_ID = "HIML_RUN_ID"
EXPERIMENT = "HIML_EXPERIMENT"
ATTEMPT = "HIML_ATTEMPT"
OUTPUT_FOLDER = "HIML_OUTPUT_FOLDER"
LOGS_FOLDER = "HIML_LOGS_FOLDER"
INPUT_DATASET_COUNT = "HIML_INPUT_DATASET_COUNT"
OUTPUT_DATASET_COUNT = "HIML_OUTPUT_DATASET_COUNT"
RESUME_FROM = "HIML_RESUME_FROM"


def input_dataset(index: int) -> str:
    """The variable holding the folder of input dataset `index`."""
    return f"HIML_INPUT_DATASET_{index}"


def output_dataset(index: int) -> str:
    """The variable holding the folder of output dataset `index`."""
    return f"HIML_OUTPUT_DATASET_{index}"
