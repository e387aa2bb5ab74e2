"""Fixtures of the examples' tests: the AzureML service stand-in and its backend."""

from __future__ import annotations

# executing_aml: the stand-in's backend, whose service runs each submitted job as a subprocess.
from tests.backends.conftest import aml, aml_service, executing_aml

__all__ = ["aml", "aml_service", "executing_aml"]
