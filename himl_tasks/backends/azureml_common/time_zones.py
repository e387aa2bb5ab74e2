"""IANA time zones (what a `PipelineSchedule` holds) as the Windows names AzureML reads.

Both AzureML SDKs take a schedule's time zone as a Windows time zone name ("GMT Standard
Time", "W. Europe Standard Time", ...): v1's `azureml.pipeline.core.TimeZone`, v2's
`azure.ai.ml.constants.TimeZone`. The CLDR table of tzlocal (`tzlocal.windows_tz`) maps one
system's names to the other's; each backend passes the names its SDK lists.
"""

from __future__ import annotations

from collections.abc import Collection

from himl_tasks.errors import InvalidInputError


def windows_time_zone(timezone: str, accepted: Collection[str]) -> str:
    """The Windows time zone name for an IANA one, if it is among the `accepted` names.

    Raises:
        InvalidInputError: The zone has no Windows name the SDK accepts.
    """
    if timezone in ("UTC", "Etc/UTC"):
        return "UTC"
    from tzlocal.windows_tz import tz_win

    windows = tz_win.get(timezone)
    if windows is None or windows not in accepted:
        raise InvalidInputError(
            f"AzureML schedules take no time zone matching {timezone!r} (they take Windows "
            "time zones): use a neighbouring zone of the same offset, or 'UTC' and a cron "
            "expression in UTC"
        )
    return str(windows)


def iana_time_zone(windows: str) -> str:
    """The IANA name of a Windows time zone name (UTC for one CLDR does not know)."""
    if windows in ("", "UTC"):
        return "UTC"
    from tzlocal.windows_tz import win_tz

    return str(win_tz.get(windows, "UTC"))
