"""Trains the iris classifier on input dataset `himl_sample7_input`, which `inputs.py` uploaded.

hi-ml's example 7. The dataset is not registered yet, but the datastore has its folder: the
first run that names it registers that folder as the dataset's version 1 (hi-ml's get-or-create)
and later runs take the latest version. In a job, `run_info.input_datasets[0]` is that version in
a folder on the job's machine; in a plain run, it is downloaded from the workspace (None if the
workspace has neither dataset nor folder, and the script reads `dataset/` here instead).
"""

from argparse import ArgumentParser
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from himl_tasks import submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"
DATASTORE = "workspaceblobstore"  # every AzureML workspace has it; so has the local one
DATASET = "himl_sample7_input"


def main() -> None:
    """Submits itself when asked to, then trains on the dataset and prints the test accuracy."""
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        default_datastore=DATASTORE,
        input_datasets=[DATASET],
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Train an SVM on the iris dataset.")
    parser.add_argument("--kernel", default="linear", help="the SVM's kernel")
    parser.add_argument("--penalty", type=float, default=1.0, help="the error term's penalty C")
    args = parser.parse_args()

    folder = run_info.input_datasets[0] or Path("dataset")
    print(f"reading {folder}")
    features = np.loadtxt(folder / "X.csv", delimiter=",", skiprows=1)
    species = np.loadtxt(folder / "y.csv", dtype=int, skiprows=1)
    x_train, x_test, y_train, y_test = train_test_split(features, species, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
    print(f"Kernel: {args.kernel}, penalty: {args.penalty}")
    print(f"Accuracy of the SVM on the test set: {model.score(x_test, y_test):.2f}")
    print(confusion_matrix(y_test, model.predict(x_test)))


if __name__ == "__main__":
    main()
