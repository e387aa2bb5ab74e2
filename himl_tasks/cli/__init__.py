"""The `himl` command and hi-ml's console scripts (himl-download, himl-tb).

See and steer runs from a terminal. Built on the Backend primitives only, so every command
works on the local backend and AzureML alike. Nothing here imports Prefect.
"""
