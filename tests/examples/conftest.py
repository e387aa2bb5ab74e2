"""Fixtures of the examples' tests: the AzureML service stand-in and its backend."""

from __future__ import annotations

from tests.backends.conftest import aml, aml_service

__all__ = ["aml", "aml_service"]
