"""The one door to azure-ai-ml (SDK v2): imported here only, inside functions, quietly.

`import azure.ai.ml` takes seconds and makes marshmallow 3.26 emit hundreds of
`Marshmallow4Warning`s (a DeprecationWarning subclass) about the SDK's own schemas; neither a
user nor pytest's `error` filter should see them. Every module of this backend reaches the
SDK through these functions, so no import of `azure.ai.ml` runs at `import himl_tasks` and
every one of them runs with those warnings silenced. Schemas are also built lazily when an
entity is first dumped or sent, so code that builds or sends entities runs under `quiet()`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silences marshmallow's deprecation warnings about the SDK's schemas (only those)."""
    with warnings.catch_warnings():
        try:
            from marshmallow.warnings import Marshmallow4Warning
        except ImportError:  # marshmallow without it: nothing to silence
            pass
        else:
            warnings.simplefilter("ignore", Marshmallow4Warning)
        yield


def ml() -> Any:
    """`azure.ai.ml`: MLClient, command, Input, Output, load_job."""
    with quiet():
        import azure.ai.ml
    return azure.ai.ml


def entities() -> Any:
    """`azure.ai.ml.entities`: Data, Environment, AzureBlobDatastore, QueueSettings, ..."""
    with quiet():
        import azure.ai.ml.entities
    return azure.ai.ml.entities


def sweep() -> Any:
    """`azure.ai.ml.sweep`: the search spaces, samplings and early termination policies."""
    with quiet():
        import azure.ai.ml.sweep
    return azure.ai.ml.sweep
