"""Example 3, with its result written to an output dataset: a new dataset version per run.

hi-ml's example 4. In a job, `run_info.output_datasets[0]` is a folder whose files become the
next version of dataset `himl_sample4_output` when the run completes. himl-tasks keeps each
run's files in `himl_sample4_output/<run id>/` of the datastore (hi-ml writes every run into
`himl_sample4_output/`, over the last one's). In a plain run it is None, and the files go to
`outputs/himl_sample4_output/`.
"""

from argparse import ArgumentParser
from pathlib import Path

from himl_tasks import submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"
# The datastore the dataset's files go to: every AzureML workspace has this one, and so has the
# local workspace (a folder in it).
DATASTORE = "workspaceblobstore"
DATASET = "himl_sample4_output"


def primes_below(limit: int) -> list[int]:
    """The primes smaller than `limit`, by the sieve of Eratosthenes."""
    if limit < 3:
        return []
    is_prime = [True] * limit
    is_prime[0] = is_prime[1] = False
    for number in range(2, int(limit**0.5) + 1):
        if is_prime[number]:
            # Every multiple below number * number was already struck out by a smaller factor.
            for multiple in range(number * number, limit, number):
                is_prime[multiple] = False
    return [number for number, prime in enumerate(is_prime) if prime]


def main() -> None:
    """Submits itself when asked to, then writes the primes below -n into the output dataset."""
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        default_datastore=DATASTORE,
        output_datasets=[DATASET],
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Write the prime numbers below a number to a dataset.")
    parser.add_argument("-n", "--count", type=int, default=100, help="the limit (not included)")
    parser.add_argument("-o", "--output", default="primes.txt", help="the file's name")
    args = parser.parse_args()
    folder = run_info.output_datasets[0] or Path("outputs") / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / args.output
    output.write_text("\n".join(map(str, primes_below(args.count))), encoding="utf-8")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
