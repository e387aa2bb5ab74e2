"""Where the Prefect API is, found as Prefect 3.8 finds it, without importing Prefect.

The console scripts read saved workspace blocks over the API's REST interface, so that they work
(and are tested) where Prefect cannot be imported (DESIGN.md's layering: himl_tasks/cli never
imports prefect). The settings are those Prefect's own client uses
(`prefect.settings.models.api.APISettings`): the URL `PREFECT_API_URL`, and for an API that
asks to sign in `PREFECT_API_AUTH_STRING` (HTTP basic, preferred) or `PREFECT_API_KEY` (a bearer
token), as `prefect.client.orchestration.PrefectClient.__init__` sends them. Each is read from the
environment, else from the active profile (`prefect.settings.sources.ProfileSettingsTomlLoader`):
the profiles file is `$PREFECT_PROFILES_PATH`, else `$PREFECT_HOME/profiles.toml`, else
`~/.prefect/profiles.toml`; the active profile is `$PREFECT_PROFILE`, else the file's `active`
key; the file's format is `active = "<name>"` and `[profiles.<name>]` tables of settings
(`prefect.settings.profiles._read_profiles_from`). Settings Prefect also reads from `.env`,
`prefect.toml` and `pyproject.toml` are not read here.
"""

from __future__ import annotations

import base64
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from himl_tasks.errors import ConfigurationError

API_URL = "PREFECT_API_URL"
API_KEY = "PREFECT_API_KEY"
API_AUTH_STRING = "PREFECT_API_AUTH_STRING"
HOW_TO_SET = (
    f"set {API_URL} (e.g. `export {API_URL}=http://127.0.0.1:4200/api` for a `prefect server "
    f"start` on this machine), or `prefect config set {API_URL}=...` in the active profile"
)


@dataclass(frozen=True)
class PrefectApi:
    """A Prefect API to call: its URL, where that came from, and how to sign in (if at all)."""

    url: str
    source: str
    authorization: SecretStr | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """The HTTP headers of every request (the Authorization header, when one is needed)."""
        if self.authorization is None:
            return {}
        return {"Authorization": self.authorization.get_secret_value()}


def find_prefect_api(environ: Mapping[str, str] | None = None) -> PrefectApi:
    """The Prefect API the environment, else the active Prefect profile, names.

    Args:
        environ: The environment variables to read (default: the process's).

    Raises:
        ConfigurationError: If neither names an API URL, or the profiles file is no TOML; the
            message says what to set.
    """
    env = os.environ if environ is None else environ
    path = profiles_path(env)
    profile_name, profile = _active_profile(path, env)
    url = env.get(API_URL) or str(profile.get(API_URL) or "")
    if not url:
        where = f"profile '{profile_name}' in {path}" if profile_name else f"no profile in {path}"
        raise ConfigurationError(
            f"no Prefect API is configured ({API_URL} unset, {where}): {HOW_TO_SET}"
        )
    source = API_URL if env.get(API_URL) else f"profile '{profile_name}' in {path}"

    def setting(name: str) -> str:
        return env.get(name) or str(profile.get(name) or "")

    authorization = None
    if setting(API_AUTH_STRING):
        token = base64.b64encode(setting(API_AUTH_STRING).encode()).decode()
        authorization = SecretStr(f"Basic {token}")
    elif setting(API_KEY):
        authorization = SecretStr(f"Bearer {setting(API_KEY)}")
    return PrefectApi(url.rstrip("/"), source, authorization)


def profiles_path(environ: Mapping[str, str]) -> Path:
    """The profiles file Prefect reads (`prefect.settings.sources._get_profiles_path`)."""
    if environ.get("PREFECT_PROFILES_PATH"):
        return Path(environ["PREFECT_PROFILES_PATH"]).expanduser()
    home = environ.get("PREFECT_HOME") or "~/.prefect"
    return Path(home).expanduser() / "profiles.toml"


def _active_profile(path: Path, environ: Mapping[str, str]) -> tuple[str, Mapping[str, object]]:
    """The active profile's name and settings ("" and none when there is no such profile)."""
    try:
        contents = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "", {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(
            f"the Prefect profiles file {path} cannot be read ({type(error).__name__}: "
            f"{error}): fix it, or set {API_URL}"
        ) from None
    name = environ.get("PREFECT_PROFILE") or str(contents.get("active") or "")
    profiles = contents.get("profiles")
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    return (name, profile) if isinstance(profile, dict) else ("", {})
