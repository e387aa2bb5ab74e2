"""How himl-tasks signs in to AzureML: service principal, else Azure CLI, else interactive.

The choice is made from explicit values (a Prefect block's) or the environment variables hi-ml
documents. Nothing is built, and no token requested, until `Authentication.build()` is called.
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from himl_tasks.errors import ConfigurationError

SERVICE_PRINCIPAL_ID = "HIML_SERVICE_PRINCIPAL_ID"
SERVICE_PRINCIPAL_PASSWORD = "HIML_SERVICE_PRINCIPAL_PASSWORD"
TENANT_ID = "HIML_TENANT_ID"
_SERVICE_PRINCIPAL_VARIABLES = (SERVICE_PRINCIPAL_ID, SERVICE_PRINCIPAL_PASSWORD, TENANT_ID)


class AuthenticationKind(enum.StrEnum):
    """The ways of signing in, in the order they are tried."""

    SERVICE_PRINCIPAL = "service_principal"
    AZURE_CLI = "azure_cli"
    INTERACTIVE = "interactive"


@dataclass(frozen=True)
class ServicePrincipal:
    """An application's identity: its id, its secret and its tenant (the secret never prints)."""

    application_id: str
    tenant_id: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Authentication:
    """The chosen way of signing in, not yet used.

    Attributes:
        kind: Which way.
        service_principal: The identity, for `SERVICE_PRINCIPAL`.
        tenant_id: The tenant to sign in to, when known.
    """

    kind: AuthenticationKind
    service_principal: ServicePrincipal | None = None
    tenant_id: str = ""

    def describe(self) -> str:
        """Says how himl-tasks signs in, without any secret."""
        if self.service_principal is not None:
            return f"service principal {self.service_principal.application_id}"
        return (
            "the Azure CLI's login"
            if self.kind is AuthenticationKind.AZURE_CLI
            else ("interactive login in a browser")
        )

    def build(self) -> Any:
        """The azureml-core authentication object."""
        from azureml.core.authentication import (
            InteractiveLoginAuthentication,
            ServicePrincipalAuthentication,
            TokenAuthentication,
        )

        if self.service_principal is not None:
            return ServicePrincipalAuthentication(
                tenant_id=self.service_principal.tenant_id,
                service_principal_id=self.service_principal.application_id,
                service_principal_password=self.service_principal.password,
            )
        if self.kind is AuthenticationKind.AZURE_CLI:
            # azureml's own AzureCliAuthentication needs azure-cli installed in this Python;
            # azure-identity asks the `az` on PATH instead.
            from azure.identity import AzureCliCredential

            credential = AzureCliCredential(tenant_id=self.tenant_id)

            def token_for(audience: str) -> str:
                return str(credential.get_token(f"{audience.rstrip('/')}/.default").token)

            return TokenAuthentication(token_for)
        return InteractiveLoginAuthentication(tenant_id=self.tenant_id or None)


def choose_authentication(
    service_principal: ServicePrincipal | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Authentication:
    """Chooses how to sign in: service principal, else Azure CLI, else interactive.

    Args:
        service_principal: An explicit identity (e.g. from a Prefect block); it wins over
            the environment.
        environ: The environment variables to read (default: the process's).

    Raises:
        ConfigurationError: If some but not all of HIML_SERVICE_PRINCIPAL_ID,
            HIML_SERVICE_PRINCIPAL_PASSWORD and HIML_TENANT_ID are set.
    """
    env = os.environ if environ is None else environ
    tenant = env.get(TENANT_ID, "")
    if service_principal is not None:
        return Authentication(
            AuthenticationKind.SERVICE_PRINCIPAL, service_principal, service_principal.tenant_id
        )
    present = [name for name in _SERVICE_PRINCIPAL_VARIABLES if env.get(name)]
    if len(present) == len(_SERVICE_PRINCIPAL_VARIABLES):
        principal = ServicePrincipal(
            application_id=env[SERVICE_PRINCIPAL_ID],
            tenant_id=tenant,
            password=env[SERVICE_PRINCIPAL_PASSWORD],
        )
        return Authentication(AuthenticationKind.SERVICE_PRINCIPAL, principal, tenant)
    if present and present != [TENANT_ID]:
        missing = [name for name in _SERVICE_PRINCIPAL_VARIABLES if name not in present]
        raise ConfigurationError(
            f"service principal sign-in needs {', '.join(_SERVICE_PRINCIPAL_VARIABLES)}; "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Set "
            "them all, or unset the others to sign in with the Azure CLI or interactively."
        )
    if shutil.which("az", path=env.get("PATH")):
        return Authentication(AuthenticationKind.AZURE_CLI, tenant_id=tenant)
    return Authentication(AuthenticationKind.INTERACTIVE, tenant_id=tenant)
