"""himl-tasks."""
