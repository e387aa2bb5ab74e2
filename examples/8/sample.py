"""A hyperparameter sweep over example 7's training: kernel and penalty, compared by accuracy.

hi-ml's example 8. With `--azureml` it submits the sweep as hi-ml 0.5 does on AzureML SDK v2
(its default): `hyperparam_args`, the settings of a v2 sweep job, with azure.ai.ml's search
spaces (imported only then). With `strictly_aml_v1=True` added to the call the same settings
run as a HyperDrive run on SDK v1; hi-ml's SDK v1 `hyperdrive_config` (an
`azureml.train.hyperdrive.HyperDriveConfig`) is taken there too, and refused on SDK v2. Any
other way it describes the same search as a himl-tasks `SweepSpec`, which runs on every
backend: with `--himl-local` the trials are child runs of a local sweep. Run plain, the script
trains once with its default arguments. Each trial logs `Accuracy` to its run with
`RUN_CONTEXT.log` (which in a plain run prints the value), and the sweep compares trials by it.
"""

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from himl_tasks import RUN_CONTEXT, Choice, SweepSpec, submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"
DATASTORE = "workspaceblobstore"  # every AzureML workspace has it; so has the local one
DATASET = "himl_sample8_input"
KERNELS = ("linear", "rbf", "poly", "sigmoid")
PENALTIES = (0.5, 1.0, 1.5)
TRIALS = 4  # hi-ml's example runs 12; a few keep the example quick
TRIALS_AT_ONCE = 2


def hyperparam_args() -> dict[str, Any]:
    """The search as hi-ml 0.5 gives it to AzureML SDK v2 (AzureML only).

    `create_grid_hyperparam_args_v2`'s form, with azure.ai.ml's search spaces.
    """
    from azure.ai.ml.sweep import Choice as SearchChoice

    return {
        "parameter_sampling": {
            "kernel": SearchChoice(values=list(KERNELS)),
            "penalty": SearchChoice(values=list(PENALTIES)),
        },
        "sampling_algorithm": "random",
        "primary_metric": "Accuracy",
        "goal": "Maximize",
        "max_total_trials": TRIALS,
        "max_concurrent_trials": TRIALS_AT_ONCE,
    }


def sweep_spec() -> SweepSpec:
    """The same search as a himl-tasks SweepSpec (any backend)."""
    return SweepSpec(
        parameters={"kernel": Choice(KERNELS), "penalty": Choice(PENALTIES)},
        sampling="random",
        primary_metric="Accuracy",
        goal="maximize",
        max_total_runs=TRIALS,
        max_concurrent_runs=TRIALS_AT_ONCE,
    )


def main() -> None:
    """Submits the sweep when asked to; in a trial (or a plain run) trains once and logs."""
    on_azureml = "--azureml" in sys.argv[1:]
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        default_datastore=DATASTORE,
        input_datasets=[DATASET],
        wait_for_completion=True,
        wait_for_completion_show_output=True,
        hyperparam_args=hyperparam_args() if on_azureml else None,
        sweep=None if on_azureml else sweep_spec(),
    )
    parser = ArgumentParser(description="Train an SVM on the iris dataset, logging accuracy.")
    parser.add_argument("--kernel", default="linear", help="the SVM's kernel")
    parser.add_argument("--penalty", type=float, default=1.0, help="the error term's penalty C")
    args = parser.parse_args()

    folder = run_info.input_datasets[0] or Path("dataset")
    features = np.loadtxt(folder / "X.csv", delimiter=",", skiprows=1)
    species = np.loadtxt(folder / "y.csv", dtype=int, skiprows=1)
    x_train, x_test, y_train, y_test = train_test_split(features, species, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    print(f"Kernel: {args.kernel}, penalty: {args.penalty}, accuracy: {accuracy:.2f}")
    RUN_CONTEXT.log("Accuracy", accuracy)


if __name__ == "__main__":
    main()
