"""Signing in for azure-ai-ml (SDK v2): the shared choice, built as an azure-identity credential.

The choice (service principal, else Azure CLI, else interactive; inside a job, the job's
identity) is `himl_tasks.backends.azure_sign_in.choose_authentication`'s, as for SDK v1. Here it
becomes a credential:

- service principal: `ClientSecretCredential` (the secret read from its `SecretStr` only here);
- Azure CLI: `AzureCliCredential` (the `az` on PATH; 10 s per call, azure-identity's deadline);
- interactive: `DefaultAzureCredential` with its browser step on (environment, workload and
  managed identity, the developer tools' logins, then a browser, which waits 300 s at most);
- inside an AzureML job: `AzureMLOnBehalfOfCredential` when the job runs with the submitter's
  identity (AzureML then sets `OBO_ENDPOINT`, read by
  azure/ai/ml/identity/_credentials/aml_on_behalf_of.py:75), else `ManagedIdentityCredential`
  for the compute's identity, its client id from `DEFAULT_IDENTITY_CLIENT_ID`, which AzureML
  sets in the job (MicrosoftDocs/azure-ai-docs,
  articles/machine-learning/how-to-identity-based-service-authentication.md, "compute
  cluster"); azure-identity finds AzureML's token endpoint itself, from MSI_ENDPOINT and
  MSI_SECRET (azure/identity/_credentials/managed_identity.py:65).

Each is wrapped in `SignInCredential`, so that a failed sign-in, whenever the SDK first asks
for a token, is one `ConfigurationError` that says how himl-tasks tried and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from himl_tasks.backends.azure_sign_in import (
    SERVICE_PRINCIPAL_VARIABLES,
    Authentication,
    AuthenticationKind,
)
from himl_tasks.errors import ConfigurationError

OBO_ENDPOINT = "OBO_ENDPOINT"
DEFAULT_IDENTITY_CLIENT_ID = "DEFAULT_IDENTITY_CLIENT_ID"

_WHAT_TO_DO = {
    AuthenticationKind.SERVICE_PRINCIPAL: (
        "check the service principal's id, tenant and secret (HIML_SERVICE_PRINCIPAL_ID, "
        "HIML_TENANT_ID, HIML_SERVICE_PRINCIPAL_PASSWORD, or the workspace block's): the "
        "secret may have expired"
    ),
    AuthenticationKind.AZURE_CLI: (
        "run `az login` (with `--tenant <tenant>` for another tenant), or set "
        f"{', '.join(SERVICE_PRINCIPAL_VARIABLES)} to sign in as a service principal"
    ),
    AuthenticationKind.INTERACTIVE: (
        "install the Azure CLI and run `az login`, or set "
        f"{', '.join(SERVICE_PRINCIPAL_VARIABLES)} to sign in as a service principal"
    ),
    AuthenticationKind.JOB_IDENTITY: (
        "give the compute a managed identity with access to the workspace, submit the job "
        "with the submitter's identity, or give the job "
        f"{', '.join(SERVICE_PRINCIPAL_VARIABLES)} from a secret store"
    ),
}


def describe_sign_in(authentication: Authentication) -> str:
    """Says how SDK v2 signs in (its interactive way is a chain), without any secret."""
    if authentication.kind is AuthenticationKind.INTERACTIVE:
        return (
            "Azure's default credential chain (environment variables, managed identity, the "
            "developer tools' logins, then a browser)"
        )
    return authentication.describe()


class SignInCredential:
    """An azure-identity credential whose failed sign-in is one `ConfigurationError`.

    Attributes:
        credential: The azure-identity credential that signs in.
        authentication: The way of signing in it was built for.
    """

    def __init__(self, credential: Any, authentication: Authentication) -> None:
        self.credential = credential
        self.authentication = authentication

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """A token for `scopes` (azure-core's `TokenCredential.get_token`).

        Raises:
            ConfigurationError: If signing in fails; the message says what to do.
        """
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return self.credential.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as error:
            raise sign_in_failure(self.authentication, error) from error

    def close(self) -> None:
        """Closes the credential's transport."""
        close = getattr(self.credential, "close", None)
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"SignInCredential({describe_sign_in(self.authentication)})"


def sign_in_failure(authentication: Authentication, error: BaseException) -> ConfigurationError:
    """The error for a failed sign-in: how it was tried, why it failed, what to do."""
    text = str(error).strip()
    first_line = text.splitlines()[0] if text else type(error).__name__
    return ConfigurationError(
        f"could not sign in to Azure with {describe_sign_in(authentication)}: {first_line}. "
        f"To fix it, {_WHAT_TO_DO[authentication.kind]}."
    )


def azure_credential(
    authentication: Authentication, *, environ: Mapping[str, str] | None = None
) -> SignInCredential:
    """The azure-identity credential for the chosen way of signing in (no token yet).

    Args:
        authentication: The chosen way (`choose_authentication`).
        environ: The environment variables to read inside a job (default: the process's).
    """
    env = os.environ if environ is None else environ
    return SignInCredential(_identity_credential(authentication, env), authentication)


def _identity_credential(authentication: Authentication, env: Mapping[str, str]) -> Any:
    import azure.identity as identity

    principal = authentication.service_principal
    tenant = authentication.tenant_id or None
    if principal is not None:
        return identity.ClientSecretCredential(
            principal.tenant_id, principal.application_id, principal.password.get_secret_value()
        )
    if authentication.kind is AuthenticationKind.AZURE_CLI:
        return identity.AzureCliCredential(tenant_id=tenant or "")
    if authentication.kind is AuthenticationKind.JOB_IDENTITY:
        if env.get(OBO_ENDPOINT):
            from himl_tasks.backends.azureml_v2 import sdk

            sdk.ml()  # azure.ai.ml itself, imported quietly; then its identity module
            with sdk.quiet():
                from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

            return AzureMLOnBehalfOfCredential()
        return identity.ManagedIdentityCredential(client_id=env.get(DEFAULT_IDENTITY_CLIENT_ID))
    return identity.DefaultAzureCredential(
        exclude_interactive_browser_credential=False, interactive_browser_tenant_id=tenant
    )
