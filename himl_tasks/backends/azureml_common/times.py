"""The times in AzureML's run details (SDK v1's and v2's alike), parsed."""

from __future__ import annotations

import datetime
import re
from typing import Any


def parse_time(text: Any) -> datetime.datetime | None:
    """Parses AzureML's ISO times ('2026-11-21T10:00:00.123456Z'); None when absent."""
    if not text:
        return None
    cleaned = str(text).replace("Z", "+00:00")
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", cleaned)
    return datetime.datetime.fromisoformat(cleaned)
