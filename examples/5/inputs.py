"""Writes the iris data as two CSV files into `dataset/`, beside the training script.

hi-ml's example 5, inputs.py. scikit-learn ships the iris data, so nothing is downloaded.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

HERE = Path(__file__).parent.resolve()


def main() -> None:
    """Writes dataset/X.csv (the four measurements) and dataset/y.csv (the species)."""
    iris = load_iris()
    folder = HERE / "dataset"
    folder.mkdir(exist_ok=True)
    np.savetxt(folder / "X.csv", iris.data, delimiter=",", header=",".join(iris.feature_names))
    np.savetxt(folder / "y.csv", iris.target, fmt="%d", header="species")
    print(f"wrote {len(iris.target)} flowers to {folder}")


if __name__ == "__main__":
    main()
