"""Backends: where jobs run. The embedded local workspace, and AzureML.

Everything that differs between them is a method of `Backend` (see `base.py`).
"""
