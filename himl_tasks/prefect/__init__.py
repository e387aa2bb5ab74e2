"""The Prefect wing: tasks, blocks, artifacts and flow hooks, thin over the layers below."""
