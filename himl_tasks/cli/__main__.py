"""`python -m himl_tasks.cli`: the `himl` command."""

from himl_tasks.cli.app import run

run()
