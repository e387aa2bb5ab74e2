"""Fixtures of the examples' tests: the AzureML stand-ins (SDK v1 and v2) and their backends."""

from __future__ import annotations

# executing_aml: the stand-in's backend, whose service runs each submitted job as a subprocess.
from tests.backends.conftest import (
    aml,
    aml_service,
    executing_aml,
    executing_aml_v2,
    executing_aml_v2_service,
)

__all__ = ["aml", "aml_service", "executing_aml", "executing_aml_v2", "executing_aml_v2_service"]
