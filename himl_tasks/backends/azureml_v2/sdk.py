"""The one door to azure-ai-ml: every module of the v2 backend reaches `azure.ai.ml` through it.

Importing `azure.ai.ml` takes seconds and emits hundreds of marshmallow's
`Marshmallow4Warning` (a DeprecationWarning about marshmallow 4, which the SDK pins below),
which neither users nor pytest's `error` filter should see. So it is imported here only, inside
a function, once, with those warnings ignored: `import himl_tasks` stays fast.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from types import ModuleType


@functools.cache
def azure_ai_ml() -> ModuleType:
    """The `azure.ai.ml` module, imported on first call with its import-time warnings ignored."""
    from marshmallow.warnings import Marshmallow4Warning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Marshmallow4Warning)
        return importlib.import_module("azure.ai.ml")
