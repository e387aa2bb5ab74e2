"""User-facing Prefect flows; `flows/jobs/` holds the scripts that run inside jobs."""
