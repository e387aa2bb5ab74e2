"""What both AzureML backends (SDK v1 and v2) share: the service's conventions, not an SDK.

The artifact store and its run-file folders, the run's tags, the snapshot's `.amlignore`, the
failure kinds read from a run's error, the service's times and the names of built environments
are the same whichever SDK submits the job. Nothing here imports `azureml.*` or `azure.ai.ml`,
and neither backend imports the other: what both use is here.
"""
