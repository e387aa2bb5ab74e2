"""The AzureML backend on azure-ai-ml (SDK v2). azure.ai.ml itself is imported only when used."""
