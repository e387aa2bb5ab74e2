"""Downloads `outputs/primes.txt` of the run `sample.py` submitted last.

hi-ml's example 3, results.py. The workspace is found as hi-ml finds it (a `config.json` here or
above: AzureML; none: the local workspace, `$HIML_HOME` or `./.himl`).
"""

from pathlib import Path

from himl_tasks import download_files_from_run_id, get_most_recent_run

HERE = Path(__file__).parent.resolve()
RESULT = "outputs/primes.txt"


def main() -> None:
    """Downloads the run's outputs/primes.txt into downloads/<run id>/ and says where."""
    run = get_most_recent_run(HERE / "most_recent_run.txt")
    destination = HERE / "downloads" / run.id
    # Files keep their path in the run: downloads/<run id>/outputs/primes.txt.
    download_files_from_run_id(run.id, destination, prefix=RESULT)
    print(f"downloaded {destination / RESULT}")


if __name__ == "__main__":
    main()
