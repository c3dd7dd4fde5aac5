"""The rest of a send that the session started and that had to wait (see Session.send_now)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Generator
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session


# What a started send is stepped through: the coroutine itself, or another awaitable's iterator.
Steps = Coroutine[Any, Any, Any] | Generator[Any, Any, Any]


class PendingSend:
    """The rest of a send that :meth:`Session.send_now` started: awaited by the task that finishes it.

    A coroutine that has to wait yields the future it waits on (or None, for a bare
    ``sleep(0)``) and expects to be resumed once that is done. Yielding that same value from
    here hands it to the awaiting task, whose own machinery does the waiting; each resumption,
    or a cancellation, is then passed on to the send. When it finishes, the session counts the
    delivery, or turns a gone peer into :class:`Disconnected`, as for a send that finished at once.
    (An object rather than a coroutine: a writer cancelled before it ran leaves no
    "never awaited" coroutine behind.)
    """

    __slots__ = ("session", "steps", "waiting_on")

    def __init__(self, session: Session, steps: Steps, waiting_on: object) -> None:
        self.session = session
        self.steps = steps
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, None]:
        try:
            yield from self._resume()
        except (OSError, RuntimeError) as exc:
            raise self.session._gone() from exc
        self.session._metrics.messages_delivered += 1

    def abandon(self) -> None:
        """Cancel a send nobody will await (its writer was cancelled before it ran), as its task would."""
        with contextlib.suppress(BaseException):  # whatever the send does with it, it is over
            self.steps.throw(asyncio.CancelledError())
        self.steps.close()

    def _resume(self) -> Generator[Any, None, None]:
        waiting_on = self.waiting_on
        while True:
            try:
                yield waiting_on
            except BaseException as error:  # the task was cancelled: the send must know
                resume = partial(self.steps.throw, error)
            else:
                resume = partial(self.steps.send, None)
            try:
                waiting_on = resume()
            except StopIteration:
                return
