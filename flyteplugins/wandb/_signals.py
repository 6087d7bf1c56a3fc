"""Signals and bounded waits: what happens to a live W&B run when the process is told to stop.

This is the only module that touches :mod:`signal`. Its entry point is :func:`guard`, a context
manager the task wrapper puts around a task body: while it is open, SIGTERM (what Kubernetes
sends on preemption, node drain or a timeout) and SIGINT make the run finish as preempted
(``run.mark_preempting()``, its data flushed, exit code ``128 + signal``) within a bounded time,
and the signal takes its usual course: the default action (the process ends by the signal) is
raised again, or the handler that was installed before is called, the run being finished before
that handler stops the program. Nothing is swallowed; see :func:`_handle` for the order.

Where a task body runs decides where the handler can come from, because Python runs signal
handlers on the main thread only and lets only the main thread install them:

- a local run and every sync task: the body runs on a worker thread (``flyte.run`` hands the
  run to a background event loop, sync tasks go to a thread pool), so its guard cannot install
  anything. The handler is put in place by :func:`arm`, which ``@wandb_init`` calls when it
  decorates a task on the main thread (module import, in a local run and in the remote runtime
  alike). While no guarded run is live it only passes each signal on, as if it were not there;
- a remote async task: ``flyte/_bin/runtime.py`` runs it with ``asyncio.run`` on the main thread,
  so its guard installs the handler itself wherever it is not in place (nothing armed it, or a
  handler installed since replaced it, which is then chained) and puts back what it replaced
  when the last guarded task of the process ends (a reference count: one installation however
  many tasks run concurrently or nested).

The handler finishes every run registered by a guard in this process, whatever thread runs it.

:class:`Budget` is the time budget of one run's start and finish (the ``timeout`` setting).
:func:`bound_exit` makes it the budget of the process's exit as well: what wandb does when the
process ends (its usage telemetry's flush) may take only what the run left, so that on a cluster,
where the pod ends with the process, W&B adds at most the ``timeout`` to the pod's life.

Example:
    >>> budget = Budget(30.0)
    >>> 0 < budget.remaining() <= 30.0
    True
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._deadline import call_within

__all__ = [
    "PREEMPT_SECONDS",
    "Budget",
    "Preemptible",
    "arm",
    "bound_exit",
    "exit_seconds",
    "guard",
    "handled_signals",
    "nothing_at_exit",
]

logger = logging.getLogger("flyteplugins.wandb")

# At most this long is spent finishing runs on a signal: Kubernetes kills a pod 30 s after
# SIGTERM by default, and the previous handler (Flyte's, the user's) needs time too.
PREEMPT_SECONDS = 10.0


# A start may wait half of what is left: the rest pays for the offline fallback after a start
# that timed out, the finish (at most a third of the total) and what wandb does at exit.
_START_SHARE = 0.5
_FINISH_SHARE = 1.0 / 3.0
_FLOOR = 0.5
# wandb's account look-ups before a start's init_timeout begins, and wandb's own limit on each.
_LOOKUPS = 2
_LOOKUP_MAX = 5.0


@dataclass
class Budget:
    """The seconds W&B may cost a task: ``total``, shared by the run's start and its finish.

    Only the time spent waiting on W&B counts (inside :meth:`spending`), not the task's own
    work in between: a task that trains for hours still has what its start left for its finish.

    Example:
        >>> budget = Budget(30.0)
        >>> with budget.spending():
        ...     pass  # wandb.init(...)
        >>> 29.0 < budget.remaining() <= 30.0
        True
    """

    total: float
    spent: float = 0.0
    _since: float | None = field(default=None, repr=False)

    @contextmanager
    def spending(self) -> Iterator[None]:
        """Count the time spent inside the block against the budget."""
        since = time.monotonic()
        self._since = since
        try:
            yield
        finally:
            self._since = None
            self.spent += time.monotonic() - since

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return max(0.0, self.total - self.spent - running)

    def wandb_timeouts(self, init_timeout: float | None, finish_timeout: float | None) -> dict[str, float]:
        """wandb's ``init_timeout`` and ``finish_timeout`` for a start beginning now.

        The start may wait half of what is left; the rest is kept for what follows a start that
        timed out (the failed run is shut down, then the run starts offline), the finish and what
        wandb does when the process exits, so that together they stay within the budget. Before its
        ``init_timeout`` begins, wandb looks up the account twice (see :meth:`lookup_timeout`):
        those are taken out of the start's share. The finish may upload for a third of the
        total. Smaller values the user set (``None``: not set) are kept.

        Example:
            >>> Budget(30.0).wandb_timeouts(None, None)
            {'init_timeout': 11.25, 'finish_timeout': 10.0}
            >>> Budget(30.0).wandb_timeouts(5.0, 0.0)
            {'init_timeout': 5.0, 'finish_timeout': 10.0}
        """
        share = self.remaining() * _START_SHARE
        start = round(max(_FLOOR, share - _LOOKUPS * self.lookup_timeout()), 3)
        finish = round(max(_FLOOR, self.total * _FINISH_SHARE), 3)
        return {
            "init_timeout": min(init_timeout, start) if init_timeout else start,
            # wandb's finish_timeout 0 means "no bound".
            "finish_timeout": min(finish_timeout, finish) if finish_timeout else finish,
        }

    def lookup_timeout(self) -> float:
        """How long each of wandb's account look-ups at a start beginning now may wait.

        An online ``wandb.init`` that prints its "logged in" message asks the server who the
        user is, and asks again for the user's settings, each waiting up to 5 s before its
        ``init_timeout`` even begins: against a server that accepts and never answers, 10 s
        outside any bound. Each gets an eighth of the start's share (at most wandb's 5 s); the
        answer is informational (a failed look-up costs the message its user name).

        Example:
            >>> Budget(30.0).lookup_timeout()
            1.875
            >>> Budget(120.0).lookup_timeout()
            5.0
        """
        return round(min(_LOOKUP_MAX, self.remaining() * _START_SHARE / 8), 3)


_exit_lock = threading.Lock()
_exit_budget: Budget | None = None


def bound_exit(budget: Budget) -> None:
    """Make ``budget`` (the run starting now) bound what W&B does when this process exits.

    The run started last in the process decides: its budget is what the pod has left for W&B
    when its action ends. Thread-safe; the bound is put in place once per process.

    Example:
        >>> bound_exit(Budget(30.0))  # doctest: +SKIP
        >>> 29.0 < exit_seconds() <= 30.0  # doctest: +SKIP
        True
    """
    global _exit_budget
    from . import _compat

    with _exit_lock:
        first = _exit_budget is None
        _exit_budget = budget
    if first:
        _compat.bound_exit_telemetry(exit_seconds)


_server_unreachable = False


def nothing_at_exit() -> None:
    """W&B's exit-time work gets no time from now on: its server was found unreachable.

    What wandb sends when the process exits (its usage telemetry) goes to the server that runs
    could not reach: it would only wait there, whatever budget a later run of the process has.

    Example:
        >>> nothing_at_exit()  # doctest: +SKIP
        >>> exit_seconds()  # doctest: +SKIP
        0.0
    """
    global _server_unreachable
    with _exit_lock:
        _server_unreachable = True


def exit_seconds() -> float:
    """Seconds W&B's exit-time work may still take: what the last run's budget has left, nothing
    once the server was found unreachable (:func:`nothing_at_exit`).

    Example:
        >>> exit_seconds() >= 0.0
        True
    """
    with _exit_lock:
        if _server_unreachable:
            return 0.0
        budget = _exit_budget
    return budget.remaining() if budget is not None else 0.0


class Preemptible(Protocol):
    """What a guard protects: something that can end itself as preempted, within a time."""

    def preempting(self) -> None:
        """Say that a preemption has begun (quick; the end may follow)."""

    def preempt(self, exit_code: int, seconds: float) -> None:
        """End as preempted with ``exit_code``, taking at most about ``seconds``."""


def handled_signals() -> tuple[int, ...]:
    """The signals a guard handles: SIGTERM and SIGINT.

    Example:
        >>> import signal
        >>> handled_signals() == (signal.SIGTERM, signal.SIGINT)
        True
    """
    import signal

    return (signal.SIGTERM, signal.SIGINT)


_lock = threading.RLock()  # re-entrant: the handler runs on the main thread, which may hold it
_live: dict[int, tuple[Preemptible, float]] = {}
_previous: dict[int, Any] = {}
_holders = 0
_armed = False
_handling = False


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install() -> None:
    """Put the handler in place for every handled signal where it is not; remember what was there.

    A signal that is ignored (``SIG_IGN``), or whose handler was set outside Python (``None``:
    it could not be restored), is left alone: the process did not mean to act on it.
    """
    import signal

    for signum in handled_signals():
        current = signal.getsignal(signum)
        if current is _handle or current is None or current == signal.SIG_IGN:
            continue
        _previous[signum] = current
        signal.signal(signum, _handle)


def _uninstall() -> None:
    import signal

    for signum, previous in list(_previous.items()):
        # A handler installed after ours stays: whoever installed it restores ours or theirs.
        if signal.getsignal(signum) is _handle:
            signal.signal(signum, previous)
        del _previous[signum]


def arm() -> None:
    """Put the handler in place from the main thread, for task bodies that run on other threads.

    Idempotent; does nothing off the main thread. With no guarded run live, the handler only
    passes each signal on to the handler it replaced (or the default action).

    Example:
        >>> arm()  # on the main thread, e.g. when a module with @wandb_init tasks is imported
    """
    global _armed
    if not _on_main_thread():
        return
    with _lock:
        try:
            _install()
        except (ValueError, OSError):  # pragma: no cover - e.g. a sub-interpreter
            logger.debug("could not install the W&B signal handler", exc_info=True)
            return
        _armed = True


@contextmanager
def guard(target: Preemptible, seconds: float = PREEMPT_SECONDS) -> Iterator[None]:
    """While open, SIGTERM/SIGINT end ``target`` as preempted before the signal goes on.

    On the main thread the handler is installed (once for all guards, by reference count) and
    the previous one is restored when the last guard closes; elsewhere the guard relies on the
    handler :func:`arm` put in place. ``seconds`` bounds the time the handler spends on ``target``
    (capped at :data:`PREEMPT_SECONDS`).

    Example:
        >>> class Run:
        ...     def preempting(self) -> None:
        ...         print("preempting")
        ...     def preempt(self, exit_code: int, seconds: float) -> None:
        ...         print("preempted", exit_code)
        >>> with guard(Run()):
        ...     pass
    """
    global _holders
    key = id(target)
    main = _on_main_thread()
    with _lock:
        _live[key] = (target, min(seconds, PREEMPT_SECONDS))
        if main:
            _holders += 1
            try:
                _install()
            except (ValueError, OSError):  # pragma: no cover - e.g. a sub-interpreter
                logger.debug("could not install the W&B signal handler", exc_info=True)
    try:
        yield
    finally:
        with _lock:
            _live.pop(key, None)
            if main:
                _holders -= 1
                if _holders == 0 and not _armed:
                    _uninstall()


def _targets() -> list[tuple[Preemptible, float]]:
    with _lock:
        return list(_live.values())


def _mark_all() -> None:
    """Tell every guarded run that it is being preempted (quick: one message each)."""
    for target, _ in _targets():
        done, error = call_within(target.preempting, 1.0, "preempting")
        if error is not None or not done:
            logger.debug("could not mark a W&B run as preempting: %s", error)


def _preempt_all(signum: int) -> None:
    with _lock:
        targets = list(_live.values())
        _live.clear()
    if not targets:
        return
    exit_code = 128 + signum
    limit = max(seconds for _, seconds in targets)
    deadline = time.monotonic() + limit
    threads = []
    for target, seconds in targets:

        def end(target: Preemptible = target, seconds: float = seconds) -> None:
            try:
                target.preempt(exit_code, seconds)
            except Exception as exc:
                logger.warning("W&B run could not be finished on signal %d: %s", signum, exc)

        thread = threading.Thread(target=end, name="flyteplugins-wandb-preempt", daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        logger.warning(
            "W&B: runs not finished within %.0f s of signal %d; their data stays on disk", limit, signum
        )


def _reraise_default(signum: int) -> None:
    """Raise ``signum`` again with its default action (for SIGTERM and SIGINT: end the process)."""
    import signal

    with _lock:
        _previous.pop(signum, None)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _handle(signum: int, frame: Any) -> None:
    """The handler: finish the guarded runs as preempted, and pass the signal on.

    The runs are marked as preempting at once. With no handler before ours (``SIG_DFL``), they
    are finished and the signal is raised again with its default action. A handler installed
    before ours is called next: when it ends the process the Python way (``KeyboardInterrupt``,
    ``SystemExit``, Flyte's abort), the runs are finished before that goes on; when it returns,
    the program chose to carry on after the signal, and the runs stay open for the task to use.
    A second signal while the first is handled goes straight on.
    """
    global _handling
    with _lock:
        previous = _previous.get(signum)
        first = not _handling
        _handling = True
    try:
        if first:
            _mark_all()
        if callable(previous):
            try:
                previous(signum, frame)
            except BaseException:
                if first:
                    _preempt_all(signum)
                raise
            return
        if first:
            _preempt_all(signum)
        _reraise_default(signum)
    finally:
        if first:
            with _lock:
                _handling = False
