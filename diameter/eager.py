"""Eager coroutine start for Python 3.11 (3.12 has ``asyncio.eager_task_factory``).

Drive a coroutine with ``coro.send(None)``; ``StopIteration`` means its result is ready and no
Task was needed. When it yields instead, wrap the rest with :func:`resume` and give that to
``loop.create_task``: a Task cannot adopt a coroutine that has already started.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Continue *coro*, which suspended yielding *yielded* (a future, or None for a bare
    ``sleep(0)``): hand that to the driving Task, then relay sends and throws (cancellation)
    until the coroutine returns; its return value is ours."""
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # CancelledError and the like go into the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(value)
            except StopIteration as stop:
                return stop.value
