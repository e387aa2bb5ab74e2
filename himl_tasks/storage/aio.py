"""Running the async transfer engine from the sync public API, and blocking calls from it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to completion from sync code.

    Works also when the caller is itself inside a running event loop (a Prefect async task, a
    notebook): the coroutine then runs on a fresh loop in a worker thread. An interrupt of the
    caller while it waits (KeyboardInterrupt) cancels the coroutine there, waits for it to
    clean up (its temporary files removed), and is then raised.
    """
    try:
        asyncio.get_running_loop()
        inside_a_loop = True
    except RuntimeError:
        inside_a_loop = False
    if not inside_a_loop:
        return asyncio.run(coroutine)
    started = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[T]]] = []

    async def tracked() -> T:
        task = asyncio.current_task()
        assert task is not None
        running.append((asyncio.get_running_loop(), task))
        started.set()
        return await coroutine

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="himl-transfer") as pool:
        done = pool.submit(asyncio.run, tracked())
        try:
            return done.result()
        except BaseException:
            # Without this, leaving the pool would wait for the whole transfer to finish.
            if started.wait(5) and not done.done():
                loop, task = running[0]
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)
            raise


async def to_thread_to_end(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs a blocking call in a worker thread, like `asyncio.to_thread`, to its end.

    A thread cannot be stopped: if the caller is cancelled, it still waits for the call to
    return before going on, so that no file the call uses is closed (and its descriptor
    reused by another file) while the call still reads or writes it.
    """
    call = asyncio.ensure_future(asyncio.to_thread(function, *args, **kwargs))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        await asyncio.wait([call])
        if not call.cancelled():
            call.exception()  # retrieved: the cancellation is what the caller gets
        raise
