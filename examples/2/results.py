"""Prints the log (the job's output) of the run `sample.py` submitted last.

hi-ml's example 2, results.py. `most_recent_run.txt` beside the script names the run; the
workspace is found as hi-ml finds it (a `config.json` here or above: AzureML; none: the local
workspace, `$HIML_HOME` or `./.himl`). The log is the run's `user_logs/std_log.txt` on AzureML
SDK v2 and its driver log (`azureml-logs/70_driver_log.txt`) on SDK v1 and the local backend.
"""

from pathlib import Path

from himl_tasks import download_files_from_run_id, get_most_recent_run

HERE = Path(__file__).parent.resolve()
LOGS = ("user_logs/std_log.txt", "azureml-logs/70_driver_log.txt")  # SDK v2's, then v1's


def main() -> None:
    """Downloads the run's log into downloads/<run id>/ and prints it."""
    run = get_most_recent_run(HERE / "most_recent_run.txt")
    destination = HERE / "downloads" / run.id
    for log in LOGS:
        try:
            download_files_from_run_id(run.id, destination, prefix=log)
        except FileNotFoundError:  # the run has no such log: the other SDK's
            continue
        print((destination / log).read_text(encoding="utf-8"))
        return
    raise FileNotFoundError(f"run {run.id} has none of {', '.join(LOGS)}")


if __name__ == "__main__":
    main()
