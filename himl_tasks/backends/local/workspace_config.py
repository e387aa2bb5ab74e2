"""The local workspace's named datastores: folders and blob containers.

The workspace lives in a folder: the `root` argument, else `$HIML_HOME`, else `./.himl`. Its
datastores are declared in `<root>/datastores.toml`; secrets are never written there, only the
names of the environment variables that hold them:

```toml
[datastores.images]                       # a blob container
account_url = "https://myaccount.blob.core.windows.net"
container = "images"
sas_token_env = "IMAGES_SAS"              # or connection_string_env = "...",
                                          # or account_name + account_key_env,
                                          # or use_azure_identity = true

[datastores.scratch]                      # a folder, relative to the workspace root
path = "scratch"
```

The default datastore, `workspaceblobstore` (AzureML's name for it), is a folder under the root
and always exists; an empty datastore name means the default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from himl_tasks.errors import ConfigurationError, DatastoreNotFoundError
from himl_tasks.storage import Datastore, LocalDatastore

DEFAULT_DATASTORE = "workspaceblobstore"
DATASTORES_FILE_NAME = "datastores.toml"
HOME_VARIABLE = "HIML_HOME"

# A service principal's variables, as azure-identity's EnvironmentCredential reads them: handed
# to a run's supervisor (which has no such environment) when a datastore uses an identity.
IDENTITY_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")

_CREDENTIAL_KEYS = (
    "connection_string_env",
    "account_key_env",
    "sas_token_env",
    "use_azure_identity",
)


def workspace_root(root: str | PurePath | None = None) -> Path:
    """Returns the workspace folder: `root`, else $HIML_HOME, else ./.himl."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(HOME_VARIABLE) or ".himl")


@dataclass(frozen=True)
class LocalWorkspaceConfig:
    """The datastores a local workspace knows by name.

    Attributes:
        root: The workspace folder.
        config_path: The datastores file (it need not exist).
        environ: Where the secrets the entries name are read (default: this process's
            environment; a run's supervisor reads those its launcher handed it).
    """

    root: Path
    config_path: Path
    environ: Mapping[str, str] | None = None

    @classmethod
    def load(
        cls,
        root: str | PurePath | None = None,
        config_path: str | PurePath | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> LocalWorkspaceConfig:
        """Finds the workspace (see the module docstring); nothing is read until needed."""
        folder = workspace_root(root).absolute()
        path = Path(config_path) if config_path is not None else folder / DATASTORES_FILE_NAME
        if config_path is not None and not path.is_file():
            raise ConfigurationError(f"workspace config file {path} does not exist")
        return cls(folder, path, environ)

    def secret_variables(self) -> list[str]:
        """The names of the environment variables the datastores take their secrets from."""
        declared = self._declared().values()
        names = {
            str(entry[key])
            for entry in declared
            for key in _CREDENTIAL_KEYS
            if key.endswith("_env") and entry.get(key)
        }
        if any(entry.get("use_azure_identity") for entry in declared):
            names.update(IDENTITY_VARIABLES)
        return sorted(names)

    def datastore_names(self) -> list[str]:
        """Returns the names of all datastores, the default one first."""
        return _names(self._declared())

    def datastore(self, name: str = "") -> Datastore:
        """Returns the datastore of that name ("" for the default).

        Raises:
            DatastoreNotFoundError: If no datastore has that name; the message lists those that do.
            ConfigurationError: If its entry is incomplete or an environment variable it names
                is not set.
        """
        chosen = name or DEFAULT_DATASTORE
        declared = self._declared()
        if chosen in declared:
            return self._build(chosen, declared[chosen])
        if chosen == DEFAULT_DATASTORE:
            return LocalDatastore(self.root / "datastores" / chosen, name=chosen, create=True)
        raise DatastoreNotFoundError(
            f"no datastore named '{chosen}' in the workspace at {self.root}; known datastores: "
            f"{', '.join(_names(declared))}. Declare it in {self.config_path}."
        )

    def _declared(self) -> dict[str, dict[str, Any]]:
        return {**self._registered(), **self._from_file()}

    def _registered(self) -> dict[str, dict[str, Any]]:
        """Datastores registered in the workspace's registry (`LocalBackend.register_datastore`)."""
        from himl_tasks.backends.local.registry import DATABASE_NAME, Registry

        if not (self.root / DATABASE_NAME).is_file():
            return {}
        return Registry(self.root).datastores()

    def _from_file(self) -> dict[str, dict[str, Any]]:
        if not self.config_path.is_file():
            return {}
        try:
            document = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"{self.config_path} is not valid TOML: {error}") from None
        datastores = document.get("datastores", {})
        if not isinstance(datastores, dict) or not all(
            isinstance(v, dict) for v in datastores.values()
        ):
            raise ConfigurationError(
                f"{self.config_path}: 'datastores' must hold one table per datastore, "
                "e.g. [datastores.images]"
            )
        return datastores

    def check_entry(self, name: str, entry: dict[str, Any]) -> None:
        """Checks a datastore entry without reading the secret it names.

        Raises:
            ConfigurationError: If the entry is incomplete or names several credentials.
        """
        self._credential_of(name, entry)

    def _credential_of(self, name: str, entry: dict[str, Any]) -> str:
        """Returns which credential key a blob entry uses ("" for a folder datastore)."""
        if "path" in entry:
            return ""
        where = f"{self.config_path} [datastores.{name}]"
        missing = [key for key in ("account_url", "container") if not entry.get(key)]
        given = [key for key in _CREDENTIAL_KEYS if entry.get(key)]
        if missing or len(given) != 1:
            raise ConfigurationError(
                f"{where}: a folder datastore needs 'path'; a blob datastore needs "
                f"'account_url', 'container' and exactly one of {', '.join(_CREDENTIAL_KEYS)}"
                + (f" (missing: {', '.join(missing)})" if missing else "")
            )
        if given[0] == "account_key_env" and not entry.get("account_name"):
            raise ConfigurationError(f"{where}: 'account_key_env' needs 'account_name' too")
        return given[0]

    def _build(self, name: str, entry: dict[str, Any]) -> Datastore:
        credential = self._credential_of(name, entry)
        if not credential:
            return LocalDatastore(self.root / str(entry["path"]), name=name)
        from himl_tasks.storage.blob import BlobDatastore  # aiohttp only for blob datastores

        account_url, container = str(entry["account_url"]), str(entry["container"])
        if credential == "use_azure_identity":
            return BlobDatastore.with_credential(
                account_url, container, _identity_credential(self.environ), name=name
            )
        where = f"{self.config_path} [datastores.{name}]"
        secret = _secret_from_environment(where, str(entry[credential]), self.environ)
        if credential == "connection_string_env":
            return BlobDatastore.from_connection_string(secret, container, name=name)
        if credential == "sas_token_env":
            return BlobDatastore.with_sas_token(account_url, container, secret, name=name)
        return BlobDatastore.with_account_key(
            account_url, container, str(entry["account_name"]), secret, name=name
        )


def _identity_credential(environ: Mapping[str, str] | None) -> Any:
    """azure-identity's default chain; from `environ`'s service principal when it holds one."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    if environ is not None and all(environ.get(name) for name in IDENTITY_VARIABLES):
        tenant, client, secret = (environ[name] for name in IDENTITY_VARIABLES)
        return ClientSecretCredential(tenant, client, secret)
    return DefaultAzureCredential()


def _names(declared: dict[str, dict[str, Any]]) -> list[str]:
    return [DEFAULT_DATASTORE, *sorted(n for n in declared if n != DEFAULT_DATASTORE)]


def _secret_from_environment(where: str, variable: str, environ: Mapping[str, str] | None) -> str:
    value = (os.environ if environ is None else environ).get(variable)
    if not value:
        raise ConfigurationError(f"{where}: environment variable {variable} is not set")
    return value
