"""Integrity under hostile conditions: each module keeps one class of failure fixed."""
