"""Writes the iris CSV files into an output dataset, in a job: the data is made where it is kept.

hi-ml's example 6, inputs.py. Run with `--azureml` (or `--himl-local`): the files become a
version of dataset `himl_sample6_input`, which `sample.py` reads. Run plain, it writes them to
`dataset/` here.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from himl_tasks import submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"
DATASTORE = "workspaceblobstore"  # every AzureML workspace has it; so has the local one
DATASET = "himl_sample6_input"


def main() -> None:
    """Submits itself when asked to, then writes X.csv and y.csv into the output dataset."""
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        default_datastore=DATASTORE,
        output_datasets=[DATASET],
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    folder = run_info.output_datasets[0] or Path("dataset")
    folder.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    np.savetxt(folder / "X.csv", iris.data, delimiter=",", header=",".join(iris.feature_names))
    np.savetxt(folder / "y.csv", iris.target, fmt="%d", header="species")
    print(f"wrote {len(iris.target)} flowers to {folder}")


if __name__ == "__main__":
    main()
