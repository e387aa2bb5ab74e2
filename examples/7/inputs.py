"""Writes the iris CSV files on this machine and uploads them into a datastore folder.

hi-ml's example 7, inputs.py (its docs call it inputs_via_upload.py). The files land in folder
`himl_sample7_input/` of the datastore; `sample.py` then names that folder as its input dataset,
and the first run that does registers the folder as the dataset's version 1. The workspace is
found as hi-ml finds it (a `config.json` here or above: AzureML; none: the local workspace).
"""

import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

from himl_tasks import upload_to_datastore

DATASTORE = "workspaceblobstore"  # every AzureML workspace has it; so has the local one
FOLDER = "himl_sample7_input"


def main() -> None:
    """Writes X.csv and y.csv into a temporary folder and uploads them to the datastore."""
    iris = load_iris()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        np.savetxt(folder / "X.csv", iris.data, delimiter=",", header=",".join(iris.feature_names))
        np.savetxt(folder / "y.csv", iris.target, fmt="%d", header="species")
        upload_to_datastore(
            datastore_name=DATASTORE,
            local_data_folder=folder,
            remote_path=Path(FOLDER),
            overwrite=True,
        )
    print(f"uploaded {len(iris.target)} flowers to {DATASTORE}/{FOLDER}/")


if __name__ == "__main__":
    main()
