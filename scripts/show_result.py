"""Prints what the latest preprocess-then-train run made (its result artifact)."""

from __future__ import annotations

import sys

from prefect.artifacts import Artifact

from flows.preprocess_then_train import RESULT_ARTIFACT


def main() -> int:
    """Prints the latest result; returns 1 when there is none yet."""
    artifact = Artifact.get(RESULT_ARTIFACT)
    data = getattr(artifact, "data", None)
    if not isinstance(data, str):
        print("no preprocess-then-train result yet", file=sys.stderr)
        return 1
    print(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
