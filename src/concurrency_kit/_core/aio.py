"""The async machinery every awaitable call stands on: wakers, file-descriptor watches, backoff.

An awaitable wait is the synchronous wait's *arm, look again, sleep, disarm* with the sleep
replaced by an await. What can wake it is one of two things::

    another thread ── waker.wake() ──┐   (a ThreadChannel's sender: any thread, never blocks)
                                     ├──> the waiting task resumes, disarms, looks again
    a readable fd ── the loop's watch ┘   (a ProcessChannel's pipe or bell: no thread at all)

* :class:`Waker`: one per waiting call, made in the event loop. ``wake()`` may be called from
  any thread, any number of times, and never blocks its caller (who may hold a channel's
  lock): from the loop's own thread it sets the waiter's future or event directly; from
  another, it goes through ``loop.call_soon_threadsafe`` (asyncio) or the trio token's
  ``run_sync_soon``. No thread and no file descriptor per waiter.
* *Watches*: any number of tasks of one event loop may wait on the same fd (a thousand
  receivers of one ProcessChannel), but an event loop lets only one reader wait on an fd. So
  each loop keeps one watch per fd (in an anyio ``RunVar``, so asyncio and trio alike): the
  loop watches the fd while tasks wait on it, and when it becomes readable wakes *one* of
  them and stops watching until that task has disarmed (taken its item, or been cancelled),
  then watches again for the rest. The fd is level-triggered, so nothing is missed, and one
  readiness wakes one waiter, not the herd.
* :class:`Backoff`: where there is nothing to watch (a ProcessChannel's senders waiting for
  room sleep on a futex, which no event loop can wait on), a bounded poll: a few yields,
  then sleeps from 1 ms doubling up to :data:`MAX_BACKOFF`.

Backends: asyncio and trio, found with ``sniffio`` when it is installed (trio needs it), else
asyncio. The wait itself never takes an item: callers take synchronously, so a cancelled
await has taken nothing (issue #18: *cancellation is exact*).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

__all__ = [
    "MAX_BACKOFF",
    "Backoff",
    "Waker",
    "checkpoint",
    "current_task",
    "make_waker",
    "uncancelled",
    "unwatch",
    "watch",
    "yielder",
]

MAX_BACKOFF = 0.002
"""The longest sleep of :class:`Backoff` (seconds): how late a polled condition may be seen."""

_get_ident = threading.get_ident
_asyncio_sleep = asyncio.sleep

try:  # trio needs sniffio; asyncio-only installs may lack it
    from sniffio import current_async_library as _current_library
except ImportError:  # pragma: no cover - sniffio comes with trio

    def _current_library() -> str:
        return "asyncio"


class Waker:
    """What wakes one waiting call: ``wake()`` from any thread, ``await wait(seconds)``;
    ``close()`` when done with it (in a ``finally``)."""

    __slots__ = ()

    def wake(self) -> None:
        raise NotImplementedError  # pragma: no cover - each backend implements it

    def wait(self, seconds: float | None) -> Awaitable[None]:
        """An awaitable that ends when woken, or after ``seconds`` (``None``: only when woken).

        Not a coroutine on asyncio: the future itself, so that a thousand waiting tasks do
        not each keep one more coroutine frame alive (issue 18: < 2 KiB per waiter).
        """
        raise NotImplementedError  # pragma: no cover - each backend implements it

    def close(self) -> None:
        """Forget the timer of :meth:`wait`, if any."""

    def rearm(self) -> None:
        """Make the waker wakeable again after a :meth:`wait` that ended (woken or timed out);
        a ``wake()`` from now on ends the next :meth:`wait`."""
        raise NotImplementedError  # pragma: no cover - each backend implements it


class _AsyncioWaker(Waker):
    __slots__ = ("_future", "_loop", "_thread", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()
        self._thread = _get_ident()
        self._timer: asyncio.TimerHandle | None = None

    def _set(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def wake(self) -> None:
        if _get_ident() == self._thread:
            self._set()
            return
        try:
            self._loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def wait(self, seconds: float | None) -> Awaitable[None]:
        if seconds is not None:
            self._timer = self._loop.call_later(seconds, self._set)
        return self._future

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def rearm(self) -> None:
        self.close()
        if self._future.done():
            self._future = self._loop.create_future()


class _TrioWaker(Waker):
    __slots__ = ("_event", "_thread", "_token")

    def __init__(self) -> None:
        import trio

        self._event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = _get_ident()

    def wake(self) -> None:
        if _get_ident() == self._thread:
            self._event.set()
            return
        import trio

        try:
            self._token.run_sync_soon(self._set)
        except trio.RunFinishedError:  # the run is over: nobody is waiting any more
            pass

    def _set(self) -> None:
        self._event.set()  # the event of now: rearm() may have replaced the one of the wake

    def wait(self, seconds: float | None) -> Awaitable[None]:
        if seconds is None:
            return self._event.wait()
        return self._wait_at_most(seconds)

    async def _wait_at_most(self, seconds: float) -> None:
        import trio

        with trio.move_on_after(seconds):
            await self._event.wait()

    def rearm(self) -> None:
        import trio

        if self._event.is_set():
            self._event = trio.Event()


def make_waker() -> Waker:
    """A waker for the calling task's event loop (asyncio or trio)."""
    library = _current_library()
    if library == "asyncio":
        return _AsyncioWaker(asyncio.get_running_loop())
    if library == "trio":
        return _TrioWaker()
    raise RuntimeError(f"concurrency_kit's async calls run on asyncio or trio, not {library}")


# -- file-descriptor watches ---------------------------------------------------------------


class _Watch:
    """One event loop's watch of one fd: the tasks waiting on it, oldest first."""

    __slots__ = ("active", "fd", "scope", "waiters")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.waiters: dict[Waker, None] = {}  # an ordered set
        self.active = False  # the loop is watching the fd
        self.scope: Any = None  # trio: the watching task's cancel scope

    def ready(self) -> None:
        """The fd is readable: wake the oldest waiter; stop watching until it disarms."""
        self.active = False
        if self.waiters:
            waker = next(iter(self.waiters))
            del self.waiters[waker]
            waker.wake()


class _AsyncioWatches:
    # No reference to the loop: the RunVar keeps this object under the loop as a weak key,
    # and a value that held its key would keep every loop ever run alive.
    __slots__ = ("watches",)

    def __init__(self) -> None:
        self.watches: dict[int, _Watch] = {}

    def start(self, watch: _Watch) -> None:
        watch.active = True
        asyncio.get_running_loop().add_reader(watch.fd, self._ready, watch)

    def _ready(self, watch: _Watch) -> None:
        asyncio.get_running_loop().remove_reader(watch.fd)
        watch.ready()
        if not watch.waiters and not watch.active and self.watches.get(watch.fd) is watch:
            self.watches.pop(watch.fd, None)

    def stop(self, watch: _Watch) -> None:
        asyncio.get_running_loop().remove_reader(watch.fd)
        watch.active = False
        if self.watches.get(watch.fd) is watch:
            self.watches.pop(watch.fd, None)


class _TrioWatches:
    __slots__ = ("watches",)

    def __init__(self) -> None:
        self.watches: dict[int, _Watch] = {}

    def start(self, watch: _Watch) -> None:
        import trio

        watch.active = True
        trio.lowlevel.spawn_system_task(
            self._run, watch, name=f"concurrency_kit watch fd {watch.fd}"
        )

    async def _run(self, watch: _Watch) -> None:
        import trio

        if not watch.active:
            return  # stopped before this task ran
        with trio.CancelScope() as scope:
            watch.scope = scope
            await trio.lowlevel.wait_readable(watch.fd)
        watch.scope = None
        if scope.cancelled_caught or not watch.active:
            # Stopped: stop() has forgotten this watch already, and a new watch of the same fd
            # may be waiting on it now (stopped after the fd became readable but before this
            # task ran again, the wait completed and nothing was caught): leave that one be.
            return
        watch.ready()
        if not watch.waiters and not watch.active and self.watches.get(watch.fd) is watch:
            self.watches.pop(watch.fd, None)

    def stop(self, watch: _Watch) -> None:
        # Cancelling unregisters the fd at once (trio runs the wait's abort now), so a new
        # watch of the same fd may start before the cancelled task has ended.
        if watch.scope is not None:
            watch.scope.cancel()
        watch.active = False
        if self.watches.get(watch.fd) is watch:
            self.watches.pop(watch.fd, None)


_WATCHES: anyio.lowlevel.RunVar[Any] = anyio.lowlevel.RunVar("concurrency_kit_watches")


def _watches() -> Any:
    try:
        return _WATCHES.get()
    except LookupError:
        if _current_library() == "trio":
            watches: Any = _TrioWatches()
        else:
            watches = _AsyncioWatches()
        _WATCHES.set(watches)
        return watches


def watch(fd: int, waker: Waker) -> None:
    """Wake ``waker`` when ``fd`` is readable (one waiter per readiness; see the module doc).

    Every :func:`watch` must be followed by :func:`unwatch` (in a ``finally``), woken or not:
    that is what hands a readiness on when the woken task was cancelled.
    """
    watches = _watches()
    entry = watches.watches.get(fd)
    if entry is None:
        entry = watches.watches[fd] = _Watch(fd)
    entry.waiters[waker] = None
    if not entry.active:
        watches.start(entry)


def unwatch(fd: int, waker: Waker) -> None:
    """Undo :func:`watch`: forget ``waker``; watch again for the others if it had been woken."""
    watches = _watches()
    entry = watches.watches.get(fd)
    if entry is None:
        return
    entry.waiters.pop(waker, None)
    if entry.waiters:
        if not entry.active:
            watches.start(entry)
    elif entry.active:
        watches.stop(entry)


# -- polling where nothing can be watched ----------------------------------------------------


class Backoff:
    """A bounded poll: ``await pause()`` yields three times, then sleeps 1 ms, doubling to
    :data:`MAX_BACKOFF` (one object per waiting call; not an async generator, which would
    need closing)."""

    __slots__ = ("_delay",)

    def __init__(self) -> None:
        self._delay = -3.0  # below 0: bare yields left

    async def pause(self, limit: float | None = None) -> None:
        """Wait one step (at most ``limit`` seconds)."""
        delay = self._delay
        if delay < 0:
            self._delay = delay + 1 if delay < -1 else 0.001
            await anyio.lowlevel.checkpoint()
            return
        self._delay = min(delay * 2, MAX_BACKOFF)
        await anyio.sleep(delay if limit is None else min(delay, limit))


def yielder() -> Callable[[], Awaitable[None]]:
    """The cheapest way to let the calling task's event loop run others: a zero-argument
    coroutine function, to look up once per waiting call rather than once per yield."""
    if _current_library() == "asyncio":
        return _asyncio_sleep0
    return anyio.lowlevel.checkpoint


def _asyncio_sleep0() -> Awaitable[None]:
    return _asyncio_sleep(0)


async def checkpoint() -> None:
    """Let the event loop run other tasks (and deliver a pending cancellation)."""
    if _current_library() == "asyncio":
        await _asyncio_sleep(0)  # what anyio's checkpoint does, in half the time
    else:
        await anyio.lowlevel.checkpoint()


# -- task identity and cleanup that must not be cancelled --------------------------------------


def current_task() -> object:
    """The calling task (asyncio or trio): what owns a lock acquired by an awaiting call."""
    if _current_library() == "trio":
        import trio

        return trio.lowlevel.current_task()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - an awaiting call always runs in a task
        raise RuntimeError("no running asyncio task")
    return task


async def uncancelled(step: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``step()`` to its end even if the task is cancelled meanwhile; a cancellation that
    came is delivered afterwards (as :meth:`asyncio.Condition.wait` retakes its lock).

    For the cleanup an awaiting call owes its caller whatever happens: a condition's waiter
    retaking its lock before it raises.
    """
    if _current_library() == "trio":
        import trio

        with trio.CancelScope(shield=True):
            return await step()
    cancelled: BaseException | None = None
    while True:
        try:
            result = await step()
            break
        except asyncio.CancelledError as error:  # asyncio delivers each cancel() once
            cancelled = error
    if cancelled is not None:
        raise cancelled
    return result
