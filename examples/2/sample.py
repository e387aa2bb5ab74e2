"""Example 1's script, made to run elsewhere: one call before the arguments are read.

hi-ml's example 2. `python sample.py -n 103` prints the primes here, as before;
`--azureml` (or `--himl-local`) submits this script with `-n 103` to a workspace, waits, shows
the job's output, writes `most_recent_run.txt` and exits: the code after the call then runs only
in the job.
"""

from argparse import ArgumentParser

from himl_tasks import submit_to_azure_if_needed

# A compute cluster of your workspace: on AzureML one you created; on the local backend, create
# it once (see examples/README.md).
CLUSTER = "cpu-cluster"


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
    """Submits itself when asked to, then prints the primes below -n (here or in the job)."""
    # Called before parse_args: the submission flags are not this script's own arguments.
    submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Print the prime numbers below a number.")
    parser.add_argument("-n", "--count", type=int, default=100, help="the limit (not included)")
    args = parser.parse_args()
    print("\n".join(map(str, primes_below(args.count))))


if __name__ == "__main__":
    main()
