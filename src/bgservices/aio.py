"""``AsyncService`` and ``AsyncPeriodicService``: services written with ``async def``.

They have the options, states, restart policies, backoff, listeners and status of their
thread counterparts, and go through the same transition table and the same life-cycle
decisions (``Service._after_cycle`` and friends); only the waiting differs: they await where
a thread blocks. Each launch is one task on an event loop:

- started with ``sup.start()``, on one loop thread the supervisor owns for all its async
  services (non-daemon when any of them is critical, so their ``teardown()`` runs on every
  exit path a critical thread service's does);
- started with ``await sup.astart()`` or ``async with sup:``, on the loop that awaited it
  (a FastAPI lifespan), while thread services keep their threads.

A stop wakes ``wait()`` and runs ``on_stop_requested()``; at the stop's deadline the task is
cancelled, and a task that survives its cancellation is a straggler, reported with its
coroutine stack. A watchdog reports a loop held longer than ``loop_block_threshold``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from . import _exit
from ._loop import Place, Timed
from ._stacks import thread_stack
from .errors import Problem
from .options import option
from .periodic import PeriodicService
from .service import Service, _Outcome, full_repr, iso_time
from .state import ServiceState

__all__ = ["AsyncPeriodicService", "AsyncService"]

_S = ServiceState
#: After the cancellation at the deadline, how long a stop waits for the tasks to unwind (one
#: window for every task of the loop cancelled by the same sweep, so that a thousand stragglers
#: cost it once).
_CANCEL_WAIT = 0.1


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where a task is suspended: every coroutine in its chain of awaits, outermost first
    (``Task.print_stack`` shows only the outermost)."""
    frames: list[tuple[Any, int]] = []
    awaited: Any = task.get_coro()
    if isinstance(awaited, Timed):
        awaited = awaited.inner
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    text = "".join(traceback.StackSummary.extract(frames).format())
    if awaited is not None:
        text += f"  awaiting {full_repr(awaited)}\n"
    return text


def _cancel_stopping(place: Place) -> Callable[[bool], None]:
    """The deadline sweep of *place* (on its loop): cancel the task of every service whose
    stop was asked (daemon-safe ones too if *everyone*: theirs is the last deadline)."""

    def cancel(everyone: bool) -> None:
        for service in place.members():
            if service._stop_requested and (everyone or not service.daemon):
                service._cancel_in_loop()

    return cancel


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_PLAIN_HOOKS = ("init_state", "stats", "summary", "check_options")


def _refuse_sync_hooks(cls: type[AsyncService]) -> None:
    """A plain ``def`` where the loop awaits a coroutine would block it, or never run."""
    for hook in cls._coroutine_hooks:
        func = cls.__dict__.get(hook)
        if func is not None and not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"{cls.__qualname__}.{hook} must be `async def`: {cls.__qualname__} runs on an "
                "event loop, which awaits it. For blocking code subclass bgservices.Service "
                "(a thread of its own), or await asyncio.to_thread(...) inside it"
            )
    for hook in _PLAIN_HOOKS:
        func = cls.__dict__.get(hook)
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"{cls.__qualname__}.{hook} must be a plain `def`: bgservices calls it "
                "directly and would never await it"
            )


_ARMED = object()  # what _arm_thread returns: the task is placed by _begin_thread


class AsyncService(Service):
    """A service whose hooks are coroutines, run as one task on an event loop.

    Implement ``async def run()`` (it must return soon after a stop is requested: use
    ``await self.wait()`` or check ``self.stopping``); ``setup`` and ``teardown`` are
    ``async def`` too, and ``on_stop_requested`` may be either (a plain one runs on the loop,
    so keep it short). Never block the loop: blocking work belongs in a thread service or
    in ``await asyncio.to_thread(...)``.
    """

    is_async: ClassVar[bool] = True
    #: Hooks that must be ``async def`` (refused at class definition otherwise).
    _coroutine_hooks: ClassVar[tuple[str, ...]] = ("setup", "run", "teardown")
    _instance_attributes = frozenset({"loop_blocked", "last_loop_block"})

    loop_block_threshold: float | None = option(
        default=0.1,
        gt=0,
        help="Report the event loop as blocked when one step of this service holds it this "
        "many seconds (None: not watched).",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_sync_hooks(cls)

    @classmethod
    def check_options(cls, values: Any) -> list[Problem]:
        problems = super().check_options(values)
        if values.get("lease") is not None:  # the async life cycle has no STANDBY (yet)
            problems.append(
                Problem("lease", f"{cls.__name__} is async: leases need a thread service")
            )
        return problems

    def _configure(self, options: Any) -> None:
        self._task: asyncio.Task[None] | None = None
        self._place: Place | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._hook_task: asyncio.Future[None] | None = None
        self._cancelled = False
        self._stop_ticket = 0  # Place.ticket when the stop was asked
        super()._configure(options)

    def _new_run(self) -> None:
        self.loop_blocked = 0
        self.last_loop_block: dict[str, Any] | None = None
        super()._new_run()

    # -- hooks for subclasses -------------------------------------------------------------

    async def setup(self) -> None:  # type: ignore[override]
        """Acquire resources, before ``run()``; if it raises, ``teardown()`` is not called."""

    async def run(self) -> None:  # type: ignore[override]
        """The service's body. Must return soon after a stop is requested."""
        raise NotImplementedError(f"{type(self).__name__} must implement run()")

    async def teardown(self) -> None:  # type: ignore[override]
        """Release resources; runs after every ``run()``, whether it returned, raised, stopped
        or was cancelled at the stop's deadline."""

    def on_stop_requested(self) -> Awaitable[None] | None:  # type: ignore[override]
        """Override (plain or ``async def``) to unblock a ``run()`` waiting on something other
        than ``self.wait()``; it runs on the loop, and ``teardown()`` waits for it."""
        return None

    # -- helpers for subclasses -----------------------------------------------------------

    async def wait(self, seconds: float) -> bool:  # type: ignore[override]
        """Sleep up to *seconds* of the service's clock (``self.clock``: a test's
        ``FakeClock`` moves it); True at once if a stop is requested."""
        if self._stop_requested:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        # max(0.0, seconds) without a call: the coroutine's frame stays the size it was
        timer = self._clock.call_later(loop, seconds if seconds > 0 else 0.0, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.remove(waiter)
        return self._stop_requested

    def _status_fields(self) -> dict[str, Any]:
        return {
            **super()._status_fields(),
            "async": True,
            "loop_blocked": self.loop_blocked,
            "last_loop_block": self.last_loop_block,
        }

    # -- driven by the supervisor (any thread) --------------------------------------------

    def _has_stop_hook(self) -> bool:
        return type(self).on_stop_requested is not AsyncService.on_stop_requested

    def _arm_thread(self) -> Any:
        """Move to STARTING (the owner may hold its lock); the task is placed by
        ``_begin_thread``, after the owner released it."""
        with self._cond:
            if not self._exited or not self._move(_S.STARTING):
                return RuntimeError(f"service {self.name!r} is already running")
            self._stop_requested, self._place = False, None  # the last run's place is done
            self._setup_ended, self._exited = False, False
        return _ARMED

    def _begin_thread(self, armed: Any) -> BaseException | None:
        """Put the task on its loop; the error if it could not be."""
        place: Place | None = None
        try:
            owner = self._owner
            if owner is None:
                raise RuntimeError(f"async service {self.name!r} has no supervisor")
            place = owner._event_loop().enter(self, self.loop_block_threshold)  # type: ignore[attr-defined]
            assert place is not None
            self._place, self._thread = place, place.thread
            self._task, self._hook_task, self._cancelled = None, None, False
            self._stop_ticket = place.ticket  # a stop asked already: asked before any sweep
            place.post(self._spawn)
        except BaseException as exc:  # no loop could be had, or it was closed
            if place is not None:
                place.leave(self)
            with self._cond:
                self._setup_ended = self._exited = True
                self._cond.notify_all()
            return exc
        return None

    def _stop_requested_now(self, run_hook: bool) -> None:
        place = self._place
        if place is None:  # not placed yet: its task sees the stop when it begins
            return
        self._stop_ticket = place.ticket
        try:
            if place.thread is threading.current_thread():  # on its loop: nothing to batch
                place.post(self._stop_in_loop, run_hook)
            else:  # the stop asks the rest of the wave next, then waits for them
                place.post_batched(self._stop_in_loop, run_hook)
        except RuntimeError:  # its loop is closed: nothing of it can run any more
            self._loop_gone()

    def _wait_exited(self, timeout: float | None) -> bool:
        """Wait for the task to end; past *timeout* it is cancelled with every stopping task
        of its loop and given one short window to unwind: a task that survives is a
        straggler."""
        if self._exited:  # most of a stop's calls: its task ended while others were asked
            return True
        place = self._place
        if place is not None and place.loop.is_closed():  # closed under it, without astop()
            self._loop_gone()
            return True
        if place is None or place.thread is threading.current_thread():
            return self._exited  # on its own loop: waiting would stall what it waits for
        place.flush()  # the stops asked in a burst: run them now
        with self._cond:
            wait = None if timeout is None else max(0.0, timeout)
            if self._cond.wait_for(lambda: self._exited, wait):
                return True
            if not self._stop_requested:
                return False
        return self._cancel_at_deadline(place)

    def _cancel_at_deadline(self, place: Place) -> bool:
        """Past its deadline: cancel every stopping task of its loop in one sweep (critical
        ones only, if this one is) and wait the sweep's window; True if it ended."""
        if place.loop.is_closed():  # closed while it waited
            self._loop_gone()
            return True
        everyone = bool(self.daemon)  # a daemon-safe one past its deadline: the last one
        until = place.sweep(self._stop_ticket, everyone, _cancel_stopping(place), _CANCEL_WAIT)
        with self._cond:
            if self._cond.wait_for(lambda: self._exited, max(0.0, until - time.monotonic())):
                return True
        if self.daemon and _exit.interpreter_exiting() and not self._critical_on(place):
            place.abandon()  # else its loop thread, non-daemon, would hold the exit forever
        return False

    def _critical_on(self, place: Place) -> bool:
        """A critical service of the same supervisor still runs on *place*."""
        owner: Any = self._owner
        return owner is not None and any(
            getattr(s, "_place", None) is place and not s.daemon and not s._exited for s in owner
        )

    def _stack(self) -> str:
        """The task's coroutine stack; and the loop thread's, while it holds the loop."""
        task, place = self._task, self._place
        if task is None or place is None or task.done():
            return ""
        stack = f"task {task.get_name()} (innermost await last):\n{_await_chain(task)}"
        with contextlib.suppress(RuntimeError):
            if asyncio.current_task(place.loop) is task:
                stack += f"(it holds the event loop; thread {place.thread.name}:)\n"
                stack += thread_stack(place.thread)
        return stack

    def _reset_after_fork(self) -> None:
        self._task, self._place, self._waiters, self._hook_task = None, None, [], None
        super()._reset_after_fork()

    def _loop_gone(self) -> None:
        """Its loop was closed under it (never run to the task's end): it ended there."""
        with self._cond:
            if self._exited:
                return
            if self._state.active:
                self._move(_S.STOPPED)
            self._setup_ended = self._exited = True
            self._cond.notify_all()
        place, task = self._place, self._task
        if place is not None:
            place.leave(self)  # its task never ends: the last one out closes the watchdog
        if task is not None and not task.done():  # unwind it now, not at a random collection
            task._log_destroy_pending = False  # type: ignore[attr-defined]  # reported here
            with contextlib.suppress(RuntimeError):  # "coroutine ignored GeneratorExit"
                task.get_coro().close()
        self._emit("service.stopped", "warning", reason="its event loop was closed")
        owner = self._owner
        if owner is not None:
            owner._service_ended(self)

    def _loop_was_blocked(self, seconds: float, stack: str) -> None:
        """Told by the watchdog (its thread): this service's task holds the loop."""
        self.loop_blocked += 1
        self.last_loop_block = {
            "at": iso_time(time.time()),
            "seconds": round(seconds, 3),
            "stack": stack,
        }
        self._emit("service.loop_blocked", "warning", seconds=round(seconds, 3), stack=stack)

    # -- on the loop ----------------------------------------------------------------------

    def _spawn(self) -> None:
        place = self._place
        assert place is not None
        threshold = self.loop_block_threshold  # None: this service's steps are not timed
        watchdog = None if threshold is None else place.watchdog
        main = Timed(self._amain(), watchdog, self, threshold or 0.0)
        self._task = place.loop.create_task(main, name=f"bgservices:{self.name}")

    def _stop_in_loop(self, run_hook: bool) -> None:
        for waiter in list(self._waiters):
            _resolve(waiter)
        if not run_hook:
            return
        try:
            result = self.on_stop_requested()
        except BaseException as exc:
            self._stop_hook_failed(exc)
            return
        if inspect.isawaitable(result):
            self._hook_task = asyncio.ensure_future(self._await_stop_hook(result))

    async def _await_stop_hook(self, hook: Awaitable[None]) -> None:
        try:
            await hook
        except BaseException as exc:
            self._stop_hook_failed(exc)

    def _stop_hook_failed(self, exc: BaseException) -> None:
        self._record_error(exc)
        self._emit("service.on_stop_requested_failed", "error", exc=exc)

    def _cancel_in_loop(self) -> None:
        task = self._task
        if task is not None and not task.done() and not self._cancelled:
            self._cancelled = True
            task.cancel("bgservices: stop deadline")

    def _is_cancellation(self, exc: BaseException) -> bool:
        """*exc* is a cancellation of this task (at the deadline, or by whoever owns the loop),
        not a ``CancelledError`` the service's own code raised: treat it as a stop."""
        task = self._task
        if not isinstance(exc, asyncio.CancelledError) or task is None:
            return False
        if not (self._cancelled or task.cancelling()):
            return False
        while task.cancelling():
            task.uncancel()  # so that timeouts in teardown() still work
        if not self._stop_requested:  # cancelled from outside (asyncio.run's end): a stop
            self._request_stop()
        return True

    async def _amain(self) -> None:
        try:
            self._emit("service.starting", "debug", restarts=self.restarts)
            await self._alive()
        except GeneratorExit:  # closed by _loop_gone: it was told of its end there
            raise
        except BaseException as exc:  # a bug here or in a listener: never leave it "RUNNING"
            self._record_error(exc)
            self._transition(_S.FAILED, "service.failed", "error", exc=exc, reason="internal")
        finally:
            self._task_ended()

    def _task_ended(self) -> None:
        place = self._place
        with self._cond:
            if self._exited:  # its loop was closed under it: _loop_gone did the rest
                return
            if self._state.active:
                self._move(_S.FAILED)
            self._setup_ended = self._exited = True
            if place is not None and not place.owns_thread:
                self._thread = None  # the caller's: a stop must not join what awaits it
            self._cond.notify_all()
        if place is not None:
            place.leave(self)
        owner = self._owner
        if owner is not None:
            owner._service_ended(self)

    async def _alive(self) -> None:
        """``Service._live``, awaiting where it blocks."""
        attempt = 0
        while True:
            outcome, exc, ran_for = await self._acycle()
            step = self._after_cycle(outcome, exc, ran_for, attempt)
            if step is None:
                return
            attempt, delay = step
            try:
                stopped = await self.wait(delay)
            except asyncio.CancelledError as cancel:
                if not self._is_cancellation(cancel):
                    raise
                stopped = True
            if stopped or not self._relaunching():
                self._transition(_S.STOPPED, "service.stopped", "debug")
                return

    async def _acycle(self) -> tuple[_Outcome, BaseException | None, float]:
        """``Service._cycle``, awaiting the hooks."""
        try:
            if type(self).setup is not AsyncService.setup:  # the default: no coroutine to make
                await self.setup()
        except BaseException as exc:
            if self._is_cancellation(exc):
                self._setup_done()
                return _Outcome.STOPPED, None, 0.0
            return self._setup_failed(exc), exc, 0.0
        begun, running = self._began_running()
        outcome: tuple[_Outcome, BaseException | None] = (_Outcome.RETURNED, None)
        if running:
            try:
                await self.run()
            except BaseException as exc:
                if self._is_cancellation(exc):
                    outcome = (_Outcome.STOPPED, None)
                else:
                    outcome = (self._run_failed(exc), exc)
        hook = self._hook_task
        if hook is not None:  # on_stop_requested may still run: the two never overlap
            try:
                await asyncio.shield(hook)
            except BaseException as exc:
                if not self._is_cancellation(exc):
                    raise
        try:
            if type(self).teardown is not AsyncService.teardown:
                await self.teardown()
        except BaseException as exc:
            self._is_cancellation(exc)
            self._teardown_failed(exc)
        self._running_since = None
        return outcome[0], outcome[1], self._clock.monotonic() - begun


class AsyncPeriodicService(AsyncService, PeriodicService):
    """Awaits ``tick()`` every ``interval`` seconds on the loop, on the same schedule as
    ``PeriodicService`` (same options, counters and status); ticks never overlap."""

    _coroutine_hooks = ("setup", "run", "teardown", "tick")

    async def tick(self) -> None:  # type: ignore[override]
        """One round of the periodic work."""
        raise NotImplementedError(f"{type(self).__name__} must implement tick()")

    async def run(self) -> None:  # type: ignore[override]
        self._new_schedule()
        while not await self._sleep_until(self._due()):
            begun = self._tick_begins()
            try:
                await self.tick()
            except Exception as exc:
                self._tick_failed(exc)
            else:
                self.consecutive_errors = 0
            finally:
                self._tick_ended(begun)

    async def _sleep_until(self, deadline: float) -> bool:
        """Sleep until *deadline* (on the service's clock, as ``wait()`` does); True if a stop
        was requested."""
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return self.stopping
            if await self.wait(remaining):
                return True
