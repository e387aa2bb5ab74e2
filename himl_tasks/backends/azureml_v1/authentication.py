"""Signing in with azureml-core (SDK v1): the shared choice, built as azureml's objects.

The choice itself (service principal, else Azure CLI, else interactive) is SDK-neutral and
lives in `himl_tasks.backends.azure_sign_in`; its names are re-exported here for v1's users.
"""

from __future__ import annotations

from typing import Any

from himl_tasks.backends.azure_sign_in import (
    Authentication,
    AuthenticationKind,
    ServicePrincipal,
    choose_authentication,
)

__all__ = [
    "Authentication",
    "AuthenticationKind",
    "ServicePrincipal",
    "azureml_authentication",
    "choose_authentication",
]


def azureml_authentication(authentication: Authentication) -> Any:
    """The azureml-core authentication object for the chosen way of signing in."""
    from azureml.core.authentication import (
        InteractiveLoginAuthentication,
        ServicePrincipalAuthentication,
        TokenAuthentication,
    )

    principal = authentication.service_principal
    if principal is not None:
        return ServicePrincipalAuthentication(
            tenant_id=principal.tenant_id,
            service_principal_id=principal.application_id,
            service_principal_password=principal.password.get_secret_value(),
        )
    if authentication.kind is AuthenticationKind.AZURE_CLI:
        # azureml's own AzureCliAuthentication needs azure-cli installed in this Python;
        # azure-identity asks the `az` on PATH instead.
        from azure.identity import AzureCliCredential

        credential = AzureCliCredential(tenant_id=authentication.tenant_id)

        def token_for(audience: str) -> str:
            return str(credential.get_token(f"{audience.rstrip('/')}/.default").token)

        return TokenAuthentication(token_for)
    return InteractiveLoginAuthentication(tenant_id=authentication.tenant_id or None)
