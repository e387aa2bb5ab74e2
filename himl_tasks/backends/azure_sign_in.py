"""How himl-tasks signs in to Azure, whichever AzureML SDK then uses the sign-in.

The choice (service principal, else Azure CLI, else interactive; inside an AzureML job, the
job's own identity) is made here from explicit values (a Prefect block's) or the environment
variables hi-ml documents. Each SDK turns the choice into its own object:
`azureml_v1.authentication.azureml_authentication` (azureml-core) and
`azureml_v2.authentication.azure_credential` (azure-identity). Nothing is built, and no
token requested, here.
"""

from __future__ import annotations

import enum
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from himl_tasks.errors import ConfigurationError

SERVICE_PRINCIPAL_ID = "HIML_SERVICE_PRINCIPAL_ID"
SERVICE_PRINCIPAL_PASSWORD = "HIML_SERVICE_PRINCIPAL_PASSWORD"
TENANT_ID = "HIML_TENANT_ID"
SERVICE_PRINCIPAL_VARIABLES = (SERVICE_PRINCIPAL_ID, SERVICE_PRINCIPAL_PASSWORD, TENANT_ID)


class SecretValue(Protocol):
    """A secret that is read only on purpose and never prints (pydantic's `SecretStr`)."""

    def get_secret_value(self) -> str:
        """The secret itself."""
        ...


class AuthenticationKind(enum.StrEnum):
    """The ways of signing in, in the order they are tried."""

    SERVICE_PRINCIPAL = "service_principal"
    AZURE_CLI = "azure_cli"
    INTERACTIVE = "interactive"
    JOB_IDENTITY = "job_identity"
    """Inside an AzureML job: the identity AzureML gives the job (chosen only when asked)."""


@dataclass(frozen=True)
class ServicePrincipal:
    """An application's identity: its id, its tenant and its secret (a `SecretStr`)."""

    application_id: str
    tenant_id: str
    password: SecretValue


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
        return {
            AuthenticationKind.AZURE_CLI: "the Azure CLI's login",
            AuthenticationKind.JOB_IDENTITY: "the AzureML job's identity",
        }.get(self.kind, "interactive login in a browser")


def choose_authentication(
    service_principal: ServicePrincipal | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    in_job: bool = False,
) -> Authentication:
    """Chooses how to sign in: service principal, else Azure CLI, else interactive.

    Args:
        service_principal: An explicit identity (e.g. from a Prefect block); it wins over
            the environment.
        environ: The environment variables to read (default: the process's).
        in_job: Inside an AzureML job: without a service principal, the job's identity
            (neither the Azure CLI nor a browser is there).

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
    present = [name for name in SERVICE_PRINCIPAL_VARIABLES if env.get(name)]
    if len(present) == len(SERVICE_PRINCIPAL_VARIABLES):
        from pydantic import SecretStr

        principal = ServicePrincipal(
            application_id=env[SERVICE_PRINCIPAL_ID],
            tenant_id=tenant,
            password=SecretStr(env[SERVICE_PRINCIPAL_PASSWORD]),
        )
        return Authentication(AuthenticationKind.SERVICE_PRINCIPAL, principal, tenant)
    if present and present != [TENANT_ID]:
        missing = [name for name in SERVICE_PRINCIPAL_VARIABLES if name not in present]
        raise ConfigurationError(
            f"service principal sign-in needs {', '.join(SERVICE_PRINCIPAL_VARIABLES)}; "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Set "
            "them all, or unset the others to sign in with the Azure CLI or interactively."
        )
    if in_job:
        return Authentication(AuthenticationKind.JOB_IDENTITY, tenant_id=tenant)
    if shutil.which("az", path=env.get("PATH")):
        return Authentication(AuthenticationKind.AZURE_CLI, tenant_id=tenant)
    return Authentication(AuthenticationKind.INTERACTIVE, tenant_id=tenant)
