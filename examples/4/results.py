"""Downloads the dataset version the last run of `sample.py` wrote.

hi-ml's example 4, results.py, which downloads the fixed folder `himl_sample4_output/` from the
datastore. Here each run writes its own version, in `himl_sample4_output/<run id>/`, so this
asks the run which version it registered and downloads that one. hi-ml has no call for "the
datasets a run wrote", so this script uses himl-tasks' own: the workspace as a backend,
found in hi-ml's order (a `config.json` here or above: AzureML; none: the local workspace).
"""

from pathlib import Path

from himl_tasks import DatasetConfig, resolve_backend

HERE = Path(__file__).parent.resolve()


def main() -> None:
    """Downloads each dataset version the run wrote into downloads/<name>_v<version>/."""
    backend = resolve_backend()
    # most_recent_run.txt holds the run recovery id, experiment:run_id.
    recovery_id = (HERE / "most_recent_run.txt").read_text(encoding="utf-8").strip()
    run = backend.get_run_ref(recovery_id)
    for dataset in backend.run_outputs(run):
        destination = HERE / "downloads" / f"{dataset.name}_v{dataset.version}"
        config = DatasetConfig(dataset.name, version=dataset.version)
        backend.local_dataset_folder(config, destination)
        print(f"run {run.run_id} wrote {dataset.name} version {dataset.version}: {destination}")


if __name__ == "__main__":
    main()
