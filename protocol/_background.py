"""The shape every long-running component shares: tasks of its own between ``async with``
and its exit, stopped so that none outlives it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

from ._session import stop_tasks

Work = dict[str, Coroutine[Any, Any, None]]


class Background:
    """Runs the coroutines :meth:`_start` returns (by task name) as tasks from ``async with``
    until its exit.

    ``_start`` enters into ``stack`` whatever must outlive the tasks (pools, clients, open
    files). On exit ``_stopping`` turns true first (loops check it: on Python 3.11 a
    cancellation can be lost inside a publish), the tasks are cancelled until they have
    ended, then the stack unwinds in reverse. If starting fails, what was entered unwinds."""

    _stopping: bool = False

    async def _start(self, stack: contextlib.AsyncExitStack) -> Work:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._stopping = False
        stack = contextlib.AsyncExitStack()
        try:
            work = await self._start(stack)
            group = await stack.enter_async_context(asyncio.TaskGroup())
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._tasks = [group.create_task(coro, name=name) for name, coro in work.items()]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        await stop_tasks(self._tasks)
        await self._stack.__aexit__(exc_type, exc, tb)
