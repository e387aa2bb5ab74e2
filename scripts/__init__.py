"""Helpers that are not flows: the demo driver and its result printer."""
