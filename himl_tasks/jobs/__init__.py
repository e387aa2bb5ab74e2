"""Backend-neutral job logic: run to completion, resubmit, identity, submit once, pipelines."""
