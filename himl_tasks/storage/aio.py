"""Running the async transfer engine from the sync public API."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion from sync code.

    Works also when the caller is itself inside a running event loop (a Prefect async task, a
    notebook): the coroutine then runs on a fresh loop in a worker thread.
    """
    try:
        asyncio.get_running_loop()
        inside_a_loop = True
    except RuntimeError:
        inside_a_loop = False
    if not inside_a_loop:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="himl-transfer") as pool:
        return pool.submit(asyncio.run, coroutine).result()
