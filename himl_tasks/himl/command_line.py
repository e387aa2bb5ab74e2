"""What a hi-ml script's command line says: where to run it.

`--azureml` submits the script to AzureML, as in hi-ml; `--himl-local` (ours) submits it to
the embedded local backend, so the cloud path can be tried without a cloud. Either is an exact
token anywhere after the script's name (`--azureml=1` is not the flag), as hi-ml reads it.
`sys.argv` is never changed: the flags are left out of the job's arguments only
(`himl_tasks.job_spec.job_arguments`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from himl_tasks.errors import InvalidInputError
from himl_tasks.job_spec import AZUREML_FLAG, LOCAL_FLAG


class Target(enum.Enum):
    """Where `submit_to_azure_if_needed` runs the script."""

    IN_THIS_PROCESS = "in this process"
    AZUREML = "AzureML"
    LOCAL_BACKEND = "the local backend"


def submission_target(
    argv: Sequence[str],
    *,
    submit_to_azureml: bool | None = None,
    submit_to_local_backend: bool | None = None,
) -> Target:
    """Where to run: each parameter when given, else its flag on the command line.

    Args:
        argv: The command line (`sys.argv`: the script's name, then its arguments).
        submit_to_azureml: True or False decides; None reads `--azureml`.
        submit_to_local_backend: True or False decides; None reads `--himl-local`.

    Raises:
        InvalidInputError: If both say yes (a run goes to one place), or a parameter is not a
            bool or None.
    """
    for name, given in (
        ("submit_to_azureml", submit_to_azureml),
        ("submit_to_local_backend", submit_to_local_backend),
    ):
        if given is not None and not isinstance(given, bool):
            # "false" (from an environment variable, say) is true to Python: it would submit.
            raise InvalidInputError(
                f"{name} must be True, False or None (read the flag from the command line), "
                f"not {given!r}"
            )
    arguments = list(argv[1:])
    to_azureml = AZUREML_FLAG in arguments if submit_to_azureml is None else submit_to_azureml
    to_local = (
        LOCAL_FLAG in arguments if submit_to_local_backend is None else submit_to_local_backend
    )
    if to_azureml and to_local:
        raise InvalidInputError(
            f"the script is asked to go to AzureML ({_said_by(AZUREML_FLAG, submit_to_azureml)}) "
            f"and to the local backend ({_said_by(LOCAL_FLAG, submit_to_local_backend)}): "
            "choose one"
        )
    if to_azureml:
        return Target.AZUREML
    return Target.LOCAL_BACKEND if to_local else Target.IN_THIS_PROCESS


def _said_by(flag: str, parameter: bool | None) -> str:
    name = "submit_to_azureml" if flag == AZUREML_FLAG else "submit_to_local_backend"
    return f"{flag} on the command line" if parameter is None else f"{name}=True"
