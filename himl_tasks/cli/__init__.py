"""The command line: the `himl` command and hi-ml's console scripts (himl-download, himl-tb)."""
