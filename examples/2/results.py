"""Prints the driver log (the job's output) of the run `sample.py` submitted last.

hi-ml's example 2, results.py. `most_recent_run.txt` beside the script names the run; the
workspace is found as hi-ml finds it (a `config.json` here or above: AzureML; none: the local
workspace, `$HIML_HOME` or `./.himl`).
"""

from pathlib import Path

from himl_tasks import download_files_from_run_id, get_most_recent_run

HERE = Path(__file__).parent.resolve()
DRIVER_LOG = "azureml-logs/70_driver_log.txt"


def main() -> None:
    """Downloads the driver log into downloads/<run id>/ and prints it."""
    run = get_most_recent_run(HERE / "most_recent_run.txt")
    destination = HERE / "downloads" / run.id
    download_files_from_run_id(run.id, destination, prefix=DRIVER_LOG)
    print((destination / DRIVER_LOG).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
