"""A secret named, not given: a job's environment variable whose value stays out of every record.

`JobSpec(environment_variables={"API_TOKEN": SecretReference("MY_API_TOKEN")})` gives the
job `API_TOKEN` with the value of `MY_API_TOKEN` in the submitting process's environment, read
when the job's processes start, as `datastores.toml` names the variables holding datastore
keys. Only the name travels: the registry, the run's snapshot, its logs, Prefect parameters
and the job's identity hold `MY_API_TOKEN`, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from himl_tasks.errors import ConfigurationError, InvalidInputError

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SecretReference:
    """The value of an environment variable of the submitting process, read at launch.

    Args:
        variable: The environment variable holding the secret.

    Raises:
        InvalidInputError: If `variable` is not an environment variable name.
    """

    variable: str

    def __post_init__(self) -> None:
        if not isinstance(self.variable, str) or not _VARIABLE_NAME.fullmatch(self.variable):
            raise InvalidInputError(
                f"SecretReference({self.variable!r}): name an environment variable (letters, "
                "digits and '_', not starting with a digit)"
            )

    def __repr__(self) -> str:
        return f"SecretReference({self.variable!r})"

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret's value.

        Raises:
            ConfigurationError: If the variable is not set (the message names it, never a
                value).
        """
        value = (os.environ if environ is None else environ).get(self.variable)
        if not value:
            raise ConfigurationError(
                f"environment variable {self.variable} is not set: the job's secret reference "
                "names it; set it in the environment of the process that submits the job"
            )
        return value


def secret_references(variables: Mapping[str, object]) -> dict[str, str]:
    """{job variable: the environment variable its secret reference names}, for those that are."""
    return {k: v.variable for k, v in variables.items() if isinstance(v, SecretReference)}


def plain_values(variables: Mapping[str, object]) -> dict[str, str]:
    """The job variables given as plain values."""
    return {k: str(v) for k, v in variables.items() if not isinstance(v, SecretReference)}
