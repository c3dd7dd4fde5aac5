"""eager.start and Pending: a coroutine begun outside a task and finished inside one, exactly as
if a task had run it from the start."""

from __future__ import annotations

import asyncio

import pytest

from asgi_chat import eager


async def test_a_coroutine_that_never_waits_finishes_in_start() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("ran")

    assert eager.start(quick()) is None
    assert done == ["ran"]


async def test_an_error_before_the_first_wait_reaches_the_caller() -> None:
    async def broken() -> None:
        raise OSError("peer gone")

    with pytest.raises(OSError, match="peer gone"):
        eager.start(broken())


async def test_a_coroutine_that_waits_is_finished_by_the_task_that_awaits_it() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def slow() -> None:
        steps.append("before")
        await gate.wait()
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield (None) on the way is passed through too
        steps.append("end")

    pending = eager.start(slow())
    assert pending is not None
    assert steps == ["before"]
    finisher = asyncio.create_task(_finish(pending))
    await asyncio.sleep(0)
    assert steps == ["before"]  # still waiting on the gate, now inside the task
    gate.set()
    await asyncio.wait_for(finisher, 1)
    assert steps == ["before", "after", "end"]


async def test_an_error_after_the_wait_reaches_the_task() -> None:
    gate = asyncio.Event()

    async def fails_later() -> None:
        await gate.wait()
        raise RuntimeError("closed")

    pending = eager.start(fails_later())
    assert pending is not None
    gate.set()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(_finish(pending), 1)


async def test_cancelling_the_task_cancels_the_coroutine_inside() -> None:
    cleaned: list[str] = []

    async def waits_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally ran")

    pending = eager.start(waits_forever())
    assert pending is not None
    finisher = asyncio.create_task(_finish(pending))
    await asyncio.sleep(0)
    finisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finisher
    assert cleaned == ["finally ran"]


async def test_a_pending_coroutine_can_be_abandoned() -> None:
    cleaned: list[str] = []

    async def waits_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("finally ran")

    pending = eager.start(waits_forever())
    assert pending is not None
    pending.close()
    assert cleaned == ["finally ran"]


async def test_any_awaitable_works_a_future_included() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending = eager.start(future)
    assert pending is not None
    future.set_result(None)
    await asyncio.wait_for(_finish(pending), 1)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    assert eager.start(done) is None


async def _finish(pending: eager.Pending) -> None:
    await pending
