"""Contract suites and fixtures that any backend or datastore implementation reuses."""
