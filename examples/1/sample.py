"""Prints the prime numbers below a number: a plain script, before it meets himl-tasks.

hi-ml's example 1. Nothing here knows about AzureML; example 2 adds the one call that does.
"""

from argparse import ArgumentParser


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
    """Reads -n and prints the primes below it, one a line."""
    parser = ArgumentParser(description="Print the prime numbers below a number.")
    parser.add_argument("-n", "--count", type=int, default=100, help="the limit (not included)")
    args = parser.parse_args()
    print("\n".join(map(str, primes_below(args.count))))


if __name__ == "__main__":
    main()
