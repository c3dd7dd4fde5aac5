"""Start a coroutine now; finish it in a task only if it has to wait.

The hub sends one chat line to a thousand connections. Each send is a coroutine, the server's
ASGI ``send``, that almost always finishes without waiting: it writes a frame into a socket
buffer with room to spare. Awaiting it from a task per connection would cost a task switch per
recipient, more than the send itself. So the hub *steps* the coroutine itself, right away:

    pending = start(send(event))   # runs send() up to its first real wait
    if pending is None: ...        # finished: the usual case, no task involved
    else: await pending            # later, inside a task: the rest of that same send

This is what ``asyncio.eager_task_factory`` does from Python 3.12 on, reduced to one coroutine.
Stepping a coroutine by hand is safe because asyncio's contract is simple: a coroutine that has
to wait yields the future it waits for (or ``None`` for a bare ``sleep(0)``), and expects to be
resumed once that future is done. :class:`Pending` hands that future to the task that awaits it,
so the task's machinery does the waiting, then passes every resumption (or a cancellation) on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from types import CoroutineType
from typing import Any, Protocol


class Steps(Protocol):
    """What can be stepped: a coroutine, or the generator an awaitable's ``__await__`` gives."""

    def send(self, value: None, /) -> Any: ...
    def throw(self, error: BaseException, /) -> Any: ...
    def close(self) -> None: ...


def start(awaitable: Awaitable[None]) -> Pending | None:
    """Run ``awaitable`` until it first has to wait. None if it finished; else what is left of it.

    An exception raised before that first wait propagates to the caller, like a plain call. Any
    awaitable works (ASGI only promises that ``send(...)`` is one), through its ``__await__``.
    """
    # A coroutine steps itself; asking it for __await__() first would cost as much as the step.
    steps: Steps = awaitable if isinstance(awaitable, CoroutineType) else awaitable.__await__()
    try:
        waiting_on = steps.send(None)
    except StopIteration:
        return None
    return Pending(steps, waiting_on)


class Pending:
    """The rest of a coroutine that :func:`start` began: ``await`` it inside a task to finish it."""

    __slots__ = ("steps", "waiting_on")

    def __init__(self, steps: Steps, waiting_on: Any) -> None:
        self.steps = steps
        self.waiting_on = waiting_on  # the future (or None) the coroutine yielded when it stopped

    def __await__(self) -> Generator[Any, None, None]:
        steps, waiting_on = self.steps, self.waiting_on
        while True:
            try:
                yield waiting_on  # the awaiting task waits for this future, then resumes us
            except BaseException as error:  # a cancellation of that task: pass it on
                try:
                    waiting_on = steps.throw(error)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = steps.send(None)
                except StopIteration:
                    return

    def close(self) -> None:
        """Abandon the coroutine (it gets GeneratorExit, so its ``finally`` blocks run)."""
        self.steps.close()
