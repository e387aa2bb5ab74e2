"""The AzureML SDK v2 backend (azure-ai-ml): imported lazily, `import himl_tasks` stays fast."""
