"""eager.Stepper: sends run as far as they go without waiting, and a send that has to wait is
finished inside a task exactly as if the task had run it from the start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.typing import ASGISendEvent

from asgi_chat import eager

EVENT: ASGISendEvent = {"type": "websocket.send", "text": "hi", "bytes": None}


class Recorder:
    """An ASGI send whose behaviour a test decides: finish at once, wait for a gate, or fail."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.gate: asyncio.Event | None = None  # set: the next sends wait for it
        self.error: BaseException | None = None
        self.cleaned = 0

    async def __call__(self, event: ASGISendEvent) -> None:
        try:
            if self.gate is not None:
                await self.gate.wait()
                await asyncio.sleep(0)  # a bare yield (None) on the way is passed through too
            if self.error is not None:
                raise self.error
            self.sent.append(event)
        finally:
            self.cleaned += 1


async def test_a_send_that_never_waits_finishes_in_step() -> None:
    send = Recorder()
    stepper = eager.Stepper(send)
    for _ in range(3):
        assert stepper.step(EVENT) is eager.IDLE
    assert send.sent == [EVENT] * 3


async def test_an_error_before_the_first_wait_comes_out_of_step() -> None:
    send = Recorder()
    send.error = OSError("peer gone")
    with pytest.raises(OSError, match="peer gone"):
        eager.Stepper(send).step(EVENT)


async def test_a_send_that_waits_is_finished_by_the_task_that_awaits_the_rest() -> None:
    send = Recorder()
    send.gate = asyncio.Event()
    stepper = eager.Stepper(send)
    waiting_on = stepper.step(EVENT)
    assert waiting_on is not eager.IDLE
    assert send.sent == []
    finisher = asyncio.create_task(_finish(stepper.rest(waiting_on)))
    await asyncio.sleep(0)
    assert send.sent == []  # still waiting on the gate, now inside the task
    send.gate.set()
    await asyncio.wait_for(finisher, 1)
    assert send.sent == [EVENT]
    send.gate = None
    assert stepper.step(EVENT) is eager.IDLE  # ready for the next send
    assert send.sent == [EVENT, EVENT]


async def test_an_error_after_the_wait_comes_out_of_the_rest() -> None:
    send = Recorder()
    send.gate = asyncio.Event()
    stepper = eager.Stepper(send)
    waiting_on = stepper.step(EVENT)
    send.error = RuntimeError("closed")
    send.gate.set()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(_finish(stepper.rest(waiting_on)), 1)


async def test_cancelling_the_task_cancels_the_send_inside() -> None:
    send = Recorder()
    send.gate = asyncio.Event()  # never set
    stepper = eager.Stepper(send)
    finisher = asyncio.create_task(_finish(stepper.rest(stepper.step(EVENT))))
    await asyncio.sleep(0)
    finisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finisher
    assert send.cleaned == 1  # the send's finally ran
    assert send.sent == []


async def test_a_send_may_return_any_awaitable_a_future_included() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send(event: ASGISendEvent) -> asyncio.Future[None]:
        return future

    stepper = eager.Stepper(send)
    waiting_on = stepper.step(EVENT)
    assert waiting_on is future
    future.set_result(None)
    await asyncio.wait_for(_finish(stepper.rest(waiting_on)), 1)


async def _finish(rest: Any) -> None:
    await rest
