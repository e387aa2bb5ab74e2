"""The embedded local backend: `LocalBackend` and `Preemption` live in `backend.py`.

Nothing is imported here, so the supervisor process (`supervisor.py`) starts fast.
"""
