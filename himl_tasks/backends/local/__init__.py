"""The embedded local backend: `LocalBackend` lives in `backend.py`, `Preemption` in `clusters.py`.

Nothing is imported here, so the supervisor process (`supervisor.py`) starts fast.
"""
