"""Fixtures of the examples' tests: the AzureML service stand-in, its backend and the seam."""

from __future__ import annotations

# executing_aml: the stand-in's backend, whose service runs each submitted job as a subprocess;
# seam: the door's one seam to AzureML, answering with that backend.
from tests.backends.conftest import aml, aml_service, executing_aml
from tests.himl.workspace_places import seam

__all__ = ["aml", "aml_service", "executing_aml", "seam"]
