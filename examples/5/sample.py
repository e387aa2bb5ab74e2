"""Trains a support vector classifier on the iris CSV files that `inputs.py` wrote beside it.

hi-ml's example 5. The data files sit in `dataset/` next to this script, so a submission takes
them along in its snapshot: fine for a few megabytes; bigger data belongs in a dataset
(examples 6 and 7).
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
HERE = Path(__file__).parent.resolve()


def main() -> None:
    """Submits itself when asked to, then trains on dataset/ and prints the test accuracy."""
    submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Train an SVM on the iris CSV files.")
    parser.add_argument("--kernel", default="linear", help="the SVM's kernel")
    parser.add_argument("--penalty", type=float, default=1.0, help="the error term's penalty C")
    args = parser.parse_args()

    folder = HERE / "dataset"
    features = np.loadtxt(folder / "X.csv", delimiter=",", skiprows=1)
    species = np.loadtxt(folder / "y.csv", dtype=int, skiprows=1)
    x_train, x_test, y_train, y_test = train_test_split(features, species, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
    print(f"Kernel: {args.kernel}, penalty: {args.penalty}")
    print(f"Accuracy of the SVM on the test set: {model.score(x_test, y_test):.2f}")
    print(confusion_matrix(y_test, model.predict(x_test)))


if __name__ == "__main__":
    main()
