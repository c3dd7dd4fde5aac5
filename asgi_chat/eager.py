"""Send now; finish in a task only if the send has to wait.

The hub sends one chat line to a thousand connections. Each send is the server's ASGI ``send``,
a coroutine that almost always finishes without waiting: it writes a frame into a socket buffer
with room to spare. Awaiting it from a task per connection would cost a task switch per
recipient, more than the send itself; awaiting it in turn from one task would let one full
buffer stop everyone (the tutorial's flaw). So each connection gets a :func:`stepper`, and the
hub runs each send *as far as it goes without waiting*, right away:

    stepper = Stepper(send)              # once per connection, the first time it is sent to
    waiting_on = stepper.step(event)     # runs send(event)
    if waiting_on is IDLE: ...           # it finished: the usual case, no task involved
    else: await stepper.rest(waiting_on) # later, inside a task: the rest of that same send

This is what ``asyncio.eager_task_factory`` does from Python 3.12 on, reduced to one coroutine
at a time. Stepping coroutines by hand is safe because asyncio's contract is simple: a coroutine
that has to wait yields the future it waits for (or ``None`` for a bare ``sleep(0)``), and
expects to be resumed once that future is done. ``rest`` hands that future to the task that
awaits it, so the task's own machinery does the waiting, then passes every resumption (or a
cancellation) on.

Why a generator that lives as long as its connection, rather than stepping each ``send(event)``
coroutine directly: a coroutine that finishes under ``coro.send()`` reports it by raising
StopIteration, and raising and catching it per recipient costs more than the rest of the fan-out
together. Inside the generator the sends are driven by ``yield from``, which the interpreter
finishes without an exception; the generator then yields :data:`IDLE`.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, cast

from asgiref.typing import ASGISendCallable, ASGISendEvent

IDLE: Final = object()  # what a stepper's step answers once a send has finished

Steps = Generator[Any, Any, None]


def _sends(send: ASGISendCallable) -> Steps:
    event = yield IDLE
    while True:
        sending: Any = send(event)  # a coroutine (Any: typeshed has no iterable-coroutine type)
        yield from sending  # driven by the interpreter: finishing raises no StopIteration here
        event = yield IDLE


# types.coroutine marks the generator as an "iterable coroutine", which is what allows it to
# `yield from` a native coroutine (a plain generator may not). typeshed types the result as an
# Awaitable, but at run time it is the same generator function.
_iterable_sends = cast(Callable[[ASGISendCallable], Steps], types.coroutine(_sends))


class Stepper:
    """Runs one connection's sends, each as far as it goes without waiting.

    ``step(event)`` returns :data:`IDLE` when the send finished; otherwise what it waits on, to
    be finished with ``await stepper.rest(waiting_on)`` (in a task) before the next ``step``.
    An exception the send raises comes out of ``step`` or ``rest``, and the stepper is spent.
    """

    __slots__ = ("_steps", "step")

    def __init__(self, send: ASGISendCallable) -> None:
        self._steps = _iterable_sends(send)
        next(self._steps)  # run up to the first `yield IDLE`: ready for an event
        self.step: Callable[[ASGISendEvent], Any] = self._steps.send  # the hot path calls it directly

    def rest(self, waiting_on: Any) -> Awaitable[None]:
        return _Rest(self._steps, waiting_on)


class _Rest:
    """The rest of a send that had to wait: the awaiting task does the waiting."""

    __slots__ = ("steps", "waiting_on")

    def __init__(self, steps: Steps, waiting_on: Any) -> None:
        self.steps = steps
        self.waiting_on = waiting_on  # the future (or None) the send yielded when it stopped

    def __await__(self) -> Generator[Any, None, None]:
        steps, waiting_on = self.steps, self.waiting_on
        while waiting_on is not IDLE:
            try:
                yield waiting_on  # the awaiting task waits for this future, then resumes us
            except BaseException as error:  # a cancellation of that task: pass it on
                waiting_on = steps.throw(error)
            else:
                waiting_on = steps.send(None)
