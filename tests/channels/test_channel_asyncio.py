"""Receiving from asyncio, as docs/channels.rst ("Receiving from asyncio") describes it.

Issue #15, defect 12: ``await asyncio.wait_for(asyncio.to_thread(channel.recv), t)`` that times
out (or a task that is cancelled) does not stop the ``recv``: a thread cannot be interrupted,
so the worker thread keeps waiting and takes the next item, for a caller that has gone. That
is how threads are, not a channel bug; the docs say so and show what to do instead. The first
test shows the behaviour the docs warn about, the second that the documented pattern
(``recv_nowait`` polled from the event loop) loses nothing when it is cancelled.

Both are ordered by states, not sleeps: the abandoned ``recv`` is known to have taken the
item when the channel's ``received`` count says so.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from concurrency_kit import ChannelEmpty, Model

DEADLOCK = 60.0


async def wait_until_received(channel: Any, n: int) -> None:
    deadline = time.monotonic() + DEADLOCK
    while channel.statistics().received < n:
        assert time.monotonic() < deadline, "the abandoned recv never took the item"
        await asyncio.sleep(0.001)


def test_an_abandoned_to_thread_recv_takes_the_next_item(model: Model) -> None:
    async def main() -> None:
        with model.Channel(4) as channel:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(channel.recv), timeout=0.001)
            channel.send("next")
            # The worker thread still waits in recv: it takes the item, for nobody.
            await wait_until_received(channel, 1)
            with pytest.raises(ChannelEmpty):
                channel.recv_nowait()

    asyncio.run(main())  # waits for the worker thread, which has returned


async def recv_polling(channel: Any, interval: float = 0.001) -> Any:
    """The pattern the docs give: poll ``recv_nowait`` from the event loop."""
    while True:
        try:
            return channel.recv_nowait()
        except ChannelEmpty:
            await asyncio.sleep(interval)


def test_a_cancelled_polling_receive_loses_nothing(model: Model) -> None:
    async def main() -> None:
        with model.Channel(4) as channel:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(recv_polling(channel), timeout=0.01)
            channel.send("next")
            assert channel.recv_nowait() == "next"  # still there: nobody else took it
            channel.send("again")
            assert await asyncio.wait_for(recv_polling(channel), timeout=DEADLOCK) == "again"

    asyncio.run(main())
