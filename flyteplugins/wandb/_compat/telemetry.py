"""Exit-time telemetry: wandb's usage telemetry flush at process exit, bounded in time.

Example:
    >>> from flyteplugins.wandb._compat.telemetry import bound_exit_telemetry
    >>> bound_exit_telemetry(lambda: 1.0) in (True, False)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["bound_exit_telemetry"]

logger = logging.getLogger("flyteplugins.wandb")


def bound_exit_telemetry(seconds: Callable[[], float]) -> bool:
    """Bound wandb's exit-time usage telemetry by ``seconds()``, asked when the process exits.

    wandb (0.25 and later) exports usage metrics and logs through OpenTelemetry; at exit its
    proxy flushes them, each exporter posting to the W&B server with a 10 s timeout, one after the
    other: against a server that accepts and never answers, a pod outlives its task by 20 s.
    The flush keeps running, on a daemon thread, for at most ``seconds()``; what it has not
    delivered by then is dropped (later exports see no server). Telemetry stays on. ``False``
    when this wandb has no such proxy. Idempotent.

    Example:
        >>> bound_exit_telemetry(lambda: 1.0) in (True, False)  # doctest: +SKIP
        True
    """
    # private wandb API: wandb.analytics.opentelemetry.opentelemetry_proxy.OpenTelemetryProxy
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:
        return False
    proxy_class = getattr(opentelemetry_proxy, "OpenTelemetryProxy", None)
    original = getattr(proxy_class, "shutdown", None)
    if proxy_class is None or not callable(original):
        return False
    if getattr(original, "_flyteplugins_wandb", False):
        return True

    @functools.wraps(original)
    def shutdown(self: Any, *args: Any, **kwargs: Any) -> None:
        limit = max(0.0, seconds())
        if limit <= 0.0:
            # No time left (or the server was found unreachable): nothing is sent, and nothing
            # is left flushing behind the exit's other shutdowns.
            self._server_supports_proxy = False  # private wandb API, as below
            return
        finished = threading.Event()

        def flush() -> None:
            try:
                original(self, *args, **kwargs)
            finally:
                finished.set()

        threading.Thread(target=flush, name="flyteplugins-wandb-telemetry", daemon=True).start()
        if not finished.wait(limit):
            # private wandb API: the proxy's answer to "does the server take telemetry?"
            self._server_supports_proxy = False
            logger.debug("wandb's usage telemetry not flushed within %.1f s of exit: dropped", limit)

    shutdown._flyteplugins_wandb = True  # type: ignore[attr-defined]
    proxy_class.shutdown = shutdown
    return True
