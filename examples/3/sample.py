"""Example 2, with its result written to a file that is kept with the run.

hi-ml's example 3. A job's machine is gone when the job ends; what it writes to
`run_info.output_folder` (`outputs/`) is kept with the run. In a plain run that folder is
`outputs/` in the current folder, created by the call.
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
    """Submits itself when asked to, then writes the primes below -n to outputs/<-o>."""
    run_info = submit_to_azure_if_needed(
        compute_cluster_name=CLUSTER,
        wait_for_completion=True,
        wait_for_completion_show_output=True,
    )
    parser = ArgumentParser(description="Write the prime numbers below a number to a file.")
    parser.add_argument("-n", "--count", type=int, default=100, help="the limit (not included)")
    parser.add_argument("-o", "--output", default="primes.txt", help="the file, in outputs/")
    args = parser.parse_args()
    assert run_info.output_folder is not None  # always set: outputs/ here or in the job
    output = run_info.output_folder / args.output
    output.write_text("\n".join(map(str, primes_below(args.count))), encoding="utf-8")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
